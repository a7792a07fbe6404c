"""Smoke tests on the real broker and Redis, and on the scripts that start them.

Why: every streaming test builds on these services. If the broker cannot do
transactions on one node, or aiokafka (faust's client) cannot talk to it, or a
fixture leaks data between tests, this file says so first and plainly.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

from tests.conftest import DEPLOY_DIR, MakeTopics, delete_keys_with_prefix

_POLL_DEADLINE_S = 30.0


def _consume(
    bootstrap: str, topic: str, group: str, want: int, extra: Mapping[str, str] | None = None
) -> list[Message]:
    """Read from the beginning until `want` records arrived (or fail after a deadline)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **(extra or {}),
        }
    )
    consumer.subscribe([topic])
    got: list[Message] = []
    deadline = time.monotonic() + _POLL_DEADLINE_S
    try:
        while len(got) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consumer error: {err}")
            got.append(msg)
    finally:
        consumer.close()
    return got


def test_make_topics_creates_requested_partitions(
    kafka_admin: AdminClient, make_topics: MakeTopics, unique_prefix: str
) -> None:
    names = [f"{unique_prefix}a", f"{unique_prefix}b"]
    make_topics(names, partitions=3)
    md = kafka_admin.list_topics(timeout=10)
    for name in names:
        assert name in md.topics
        assert len(md.topics[name].partitions) == 3


def test_auto_topic_creation_is_off(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Producing to a missing topic fails instead of creating it: the service owns its topics."""
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "message.timeout.ms": 3000,
            "allow.auto.create.topics": True,
        }
    )
    errors: list[KafkaError] = []
    producer.produce(
        f"{unique_prefix}missing",
        value=b"x",
        on_delivery=lambda err, _msg: errors.append(err) if err is not None else None,
    )
    producer.flush(10)
    assert errors, "produce to a non-existent topic unexpectedly succeeded"
    md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert f"{unique_prefix}missing" not in md.topics


def test_confluent_produce_consume_keeps_key_partitioning(
    kafka_bootstrap: str, make_topics: MakeTopics, unique_prefix: str
) -> None:
    topic = f"{unique_prefix}transactions"
    make_topics([topic], partitions=4)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = [(f"cust-{i % 3}".encode(), f"value-{i}".encode()) for i in range(12)]
    for key, value in sent:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(15) == 0

    got = _consume(kafka_bootstrap, topic, f"{unique_prefix}g", want=len(sent))
    assert sorted((m.key(), m.value()) for m in got) == sorted(sent)
    # One customer's events meet in one partition, in production order.
    by_key: dict[bytes | None, set[int | None]] = {}
    for m in got:
        by_key.setdefault(m.key(), set()).add(m.partition())
    assert all(len(parts) == 1 for parts in by_key.values()), by_key
    for cust in by_key:
        seq = [m.value() for m in got if m.key() == cust]
        assert seq == [v for k, v in sent if k == cust]


def test_transactions_commit_visible_abort_invisible(
    kafka_bootstrap: str, make_topics: MakeTopics, unique_prefix: str
) -> None:
    topic = f"{unique_prefix}tier-changes"
    make_topics([topic], partitions=2)
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "transactional.id": f"{unique_prefix}tx",
            "transaction.timeout.ms": 30000,
        }
    )
    producer.init_transactions(30)

    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, key=b"c1", value=f"committed-{i}".encode())
    producer.commit_transaction(30)

    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, key=b"c1", value=f"aborted-{i}".encode())
    # Flush first: librdkafka purges still-queued records on abort, and then the
    # "invisible" check below would pass without the broker ever seeing them.
    assert producer.flush(15) == 0
    producer.abort_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, key=b"c1", value=b"committed-last")
    producer.commit_transaction(30)

    committed = _consume(
        kafka_bootstrap,
        topic,
        f"{unique_prefix}rc",
        want=4,
        extra={"isolation.level": "read_committed"},
    )
    assert [m.value() for m in committed] == [
        b"committed-0",
        b"committed-1",
        b"committed-2",
        b"committed-last",
    ]
    # The aborted records did reach the log: a read_uncommitted reader sees them,
    # so their absence above is the isolation level at work, not a lost produce.
    raw = _consume(
        kafka_bootstrap,
        topic,
        f"{unique_prefix}ru",
        want=7,
        extra={"isolation.level": "read_uncommitted"},
    )
    assert [m.value() for m in raw].count(b"aborted-1") == 1


async def test_aiokafka_round_trip(
    kafka_bootstrap: str, make_topics: MakeTopics, unique_prefix: str
) -> None:
    """faust speaks Kafka through aiokafka: prove it works against this broker, with a group."""
    topic = f"{unique_prefix}offers"
    make_topics([topic], partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, key=b"c9", value=f"offer-{i}".encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{unique_prefix}aio",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(_POLL_DEADLINE_S):
            while len(got) < 5:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    got.extend(r.value for r in records if r.value is not None)
        await consumer.commit()
        committed = {tp: await consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()
    assert got == [f"offer-{i}".encode() for i in range(5)]
    assert sum(off or 0 for off in committed.values()) == 5


def test_redis_set_get_hash_and_lua(redis_url: str, redis_key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        key = f"{redis_key_prefix}profile:c1"
        assert client.set(f"{redis_key_prefix}k", "v")
        assert client.get(f"{redis_key_prefix}k") == "v"
        client.hset(key, mapping={"tier": "affluent", "aum_minor": "12345600"})
        assert client.hgetall(key) == {"tier": "affluent", "aum_minor": "12345600"}
        # Compare-and-set in Lua: the kind of atomic update a profile writer needs.
        cas = (
            "if redis.call('HGET', KEYS[1], 'tier') == ARGV[1] then "
            "return redis.call('HSET', KEYS[1], 'tier', ARGV[2]) else return -1 end"
        )
        assert client.eval(cas, 1, key, "affluent", "hnw") == 0  # field existed: 0 new fields
        assert client.eval(cas, 1, key, "affluent", "private") == -1  # stale expectation refused
        assert client.hget(key, "tier") == "hnw"
    finally:
        client.close()


def test_delete_keys_with_prefix_removes_only_that_prefix(
    redis_url: str, redis_key_prefix: str
) -> None:
    """The cleanup behind `redis_key_prefix`: its keys go, a neighbour's stay."""
    client = redis.Redis.from_url(redis_url)
    neighbour = f"{redis_key_prefix[:-1]}x:keep"  # shares the text, not the prefix
    try:
        for i in range(1200):  # more than one SCAN/DEL batch
            client.set(f"{redis_key_prefix}k{i}", i)
        client.set(neighbour, 1)
        assert delete_keys_with_prefix(client, redis_key_prefix) == 1200
        assert list(client.scan_iter(match=f"{redis_key_prefix}*")) == []
        assert client.get(neighbour) == b"1"
    finally:
        client.delete(neighbour)
        client.close()


# --- the start scripts' error paths (no service is started by these) ---------


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def _path_without(tmp_path: Path, missing: set[str]) -> str:
    """A PATH holding only the tools the scripts use, minus `missing`."""
    tools = [
        "bash", "cat", "date", "dirname", "flock", "grep", "mkdir", "mktemp", "python3",
        "rm", "sed", "seq", "sleep", "ss", "touch", "tr", "head", "tail", "find", "wc",
        "mv", "java", "mvn", "redis-server", "redis-cli", "id", "stat",
    ]  # fmt: skip
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        if tool not in missing and found:
            (bindir / tool).symlink_to(found)
    return str(bindir)


def _run_script(name: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"KAFKA_PORT", "REDIS_PORT"}}
    base.update({"TIERSTREAM_RUN_DIR": str(tmp_path / "run"), **env})
    return subprocess.run(
        ["bash", str(DEPLOY_DIR / name), "start"],
        capture_output=True,
        text=True,
        env=base,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("service", ["kafka", "redis"])
def test_start_refuses_a_port_taken_by_another_process(
    service: str, tmp_path: Path, redis_url: str
) -> None:
    # redis_url: makes sure redis-server is installed before its script runs here.
    with _listening_socket() as sock:
        port = str(sock.getsockname()[1])
        env = {"KAFKA_PORT": port} if service == "kafka" else {"REDIS_PORT": port}
        proc = _run_script(service, tmp_path, **env)
    assert proc.returncode != 0
    assert f"127.0.0.1:{port} is already taken" in proc.stderr


def test_kafka_start_names_missing_java(tmp_path: Path) -> None:
    proc = _run_script("kafka", tmp_path, PATH=_path_without(tmp_path, {"java"}), KAFKA_PORT="1")
    assert proc.returncode != 0
    assert "Java not found" in proc.stderr


def test_kafka_start_names_missing_maven_when_jars_not_cached(tmp_path: Path) -> None:
    with _listening_socket() as sock:
        free_port = sock.getsockname()[1]  # released below, then (almost surely) free
    proc = _run_script(
        "kafka",
        tmp_path,
        PATH=_path_without(tmp_path, {"mvn"}),
        TIERSTREAM_CACHE=str(tmp_path / "empty-cache"),
        KAFKA_PORT=str(free_port),
        KAFKA_CONTROLLER_PORT=str(free_port),
    )
    assert proc.returncode != 0
    assert "Maven (mvn) not found" in proc.stderr
