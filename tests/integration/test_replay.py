"""`tierstream replay` against the real broker: what lands where.

The service's correctness rests on co-partitioning: every input topic has the same
partition count and every record is keyed by customer_id, so one customer's events
meet in one partition (and one worker). These tests replay a simulator file into fresh
prefixed topics and read everything back to check the count, the bytes, the keys and
that each customer sits in exactly one partition number — the one the Java client's
murmur2 partitioner picks, so other producers a bank runs agree with ours.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import orjson
import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from schemas.events import INPUT_TOPICS
from schemas.values import timestamp
from streams.cli import build_parser
from streams.settings import Settings
from streams.tools.loader import (
    ProduceError,
    ReplayStats,
    produce_records,
    read_replay_file,
    write_jsonl,
)
from streams.tools.simulator import SimConfig, Simulator, is_bad
from tests.conftest import MakeTopics
from tests.integration.harness import WorkerProcess, wait_caught_up
from tests.integration.partitioning import java_partition, murmur2
from tests.integration.reference_check import check_against_reference
from tests.reference.bank import bank

PARTITIONS = 4


def test_murmur2_matches_kafka_reference_vectors() -> None:
    # From Kafka's UtilsTest: murmur2("21") == -973932308, murmur2("foobar") == -790332482.
    assert murmur2(b"21") - (1 << 32) == -973932308
    assert murmur2(b"foobar") - (1 << 32) == -790332482


class Got(NamedTuple):
    topic: str
    partition: int
    key: bytes
    value: bytes


def _got(msg: Message) -> Got:
    assert msg.error() is None, msg.error()
    topic, partition, key, value = msg.topic(), msg.partition(), msg.key(), msg.value()
    assert topic is not None and partition is not None and key is not None and value is not None
    return Got(topic, partition, key, value)


def consume_all(bootstrap: str, group: str, topics: list[str], expected: int) -> list[Got]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    got: list[Got] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < expected and time.monotonic() < deadline:
            got.extend(_got(m) for m in consumer.consume(num_messages=500, timeout=0.5))
        # Nothing extra arrives (no client-side duplicates from retries).
        got.extend(_got(m) for m in consumer.consume(num_messages=500, timeout=1.0))
    finally:
        consumer.close()
    return got


def test_replayed_file_lands_co_partitioned_by_customer(
    kafka_bootstrap: str, unique_prefix: str, make_topics: MakeTopics, tmp_path: Path
) -> None:
    topics = [unique_prefix + t for t in INPUT_TOPICS]
    make_topics(topics, partitions=PARTITIONS)
    labelled = list(Simulator(SimConfig(customers=30, seed=13, bad_share=0.05)).labelled(600))
    path = tmp_path / "bank.jsonl"
    with path.open("wb") as fh:
        write_jsonl(iter(labelled), fh)

    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    stats = ReplayStats()
    produced = produce_records(settings, read_replay_file(str(path), stats=stats))
    assert produced == 600 == stats.records
    assert stats.raw == sum(is_bad(label) for label, _ in labelled) > 0

    msgs = consume_all(kafka_bootstrap, f"{unique_prefix}check", topics, 600)
    assert len(msgs) == 600
    got = Counter((m.topic.removeprefix(unique_prefix), m.key, m.value) for m in msgs)
    want = Counter((r.topic, r.key, r.value) for _, r in labelled)
    assert got == want  # every record, byte for byte, with its key, on its topic

    partitions_by_key: dict[bytes, set[int]] = defaultdict(set)
    topics_by_key: dict[bytes, set[str]] = defaultdict(set)
    for m in msgs:
        partitions_by_key[m.key].add(m.partition)
        topics_by_key[m.key].add(m.topic)
    assert len(partitions_by_key) == 30
    # the simulator's default bank writes no CRM contacts, no offer responses (those
    # answer a worker's offers), no erasure requests and (by default) no tier
    # overrides; every other input meets in one partition
    simulated = {unique_prefix + t for t in INPUT_TOPICS} - {
        unique_prefix + t
        for t in ("contacts", "offer-responses", "erasure-requests", "tier-overrides")
    }
    assert any(t == simulated for t in topics_by_key.values())
    assert len({p for ps in partitions_by_key.values() for p in ps}) > 1  # keys spread out
    for key, parts in partitions_by_key.items():
        assert parts == {java_partition(key, PARTITIONS)}, key


def test_replay_command_reports_progress_and_counts(
    kafka_bootstrap: str,
    unique_prefix: str,
    make_topics: MakeTopics,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_topics([unique_prefix + t for t in INPUT_TOPICS], partitions=PARTITIONS)
    path = tmp_path / "profiles.csv"
    path.write_text(
        "event_id,customer_id,ts,segment,marketing_consent,birth_date\n"
        "e1,C1,2026-03-01T09:00:00+08:00,retail,true,1980-03-01\n"
        "e2,C2,2026-03-01T09:00:01+08:00,sme,false,\n"
        "e3,C3,2026-03-01T09:00:02+08:00,vip,true,\n"
    )
    parser = build_parser()
    args = parser.parse_args(
        [
            "replay",
            str(path),
            "--topic",
            "customer-profiles",
            "--bootstrap",
            kafka_bootstrap,
            "--topic-prefix",
            unique_prefix,
        ]
    )
    assert args.func(args) == 0
    err = capsys.readouterr().err
    assert "100.0% 3/3" in err
    assert "produced 3 records" in err
    assert "1 will be dead-lettered" in err and "segment" in err  # 'vip' is no segment
    msgs = consume_all(
        kafka_bootstrap, f"{unique_prefix}cli", [f"{unique_prefix}customer-profiles"], 3
    )
    assert sorted(m.key for m in msgs) == [b"C1", b"C2", b"C3"]


def test_missing_topics_fail_with_a_clear_message(kafka_bootstrap: str, unique_prefix: str) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    with pytest.raises(ProduceError, match="tierstream topics create"):
        produce_records(settings, [])


# --- the cross-topic order contract (docs/topics.md, "Order") -------------------------


def _backfill_lines(customers: int, days: int, seed: int, rename: str = "") -> list[bytes]:
    """A randomized bank written customer by customer -- one customer's whole history,
    then the next one's: what a backfill export looks like. ``rename`` replaces the
    customer ids' leading ``C``."""
    events = bank(seed, customers=customers, days=days)
    by_customer = sorted(events, key=lambda e: e[1]["customer_id"])  # stable: order kept
    lines = []
    for topic, doc in by_customer:
        if rename:
            doc = {**doc, "customer_id": rename + doc["customer_id"][1:],
                   "event_id": rename + doc["event_id"][1:]}  # fmt: skip
        lines.append(orjson.dumps({"topic": topic, **doc}))
    return lines


def _replay(path: Path, settings: Settings, *extra: str) -> None:
    args = build_parser().parse_args(
        ["replay", str(path), "--bootstrap", settings.kafka_bootstrap,
         "--topic-prefix", settings.topic_prefix, *extra]
    )  # fmt: skip
    assert args.func(args) == 0


def _times_by_partition(settings: Settings) -> dict[tuple[str, int], list[int]]:
    """Event times of every input record, per (topic, partition), in offset order."""
    c = Consumer(settings.confluent_config(**{"group.id": f"order-{time.monotonic_ns()}",
                                              "enable.auto.commit": False}))  # fmt: skip
    out: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    try:
        tps = []
        left = 0
        for t in INPUT_TOPICS:
            for p in range(settings.partitions):
                tp = TopicPartition(settings.topic(t), p, 0)
                left += c.get_watermark_offsets(tp, timeout=10)[1]
                tps.append(tp)
        c.assign(tps)
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            ts = timestamp(orjson.loads(m.value())["ts"])
            assert isinstance(ts, int)
            out[(m.topic(), m.partition())].append((m.offset(), ts))
            left -= 1
        assert not left
    finally:
        c.close()
    return {k: [ts for _o, ts in sorted(v)] for k, v in out.items()}


def test_replay_produces_a_backfill_in_event_time_order_within_a_memory_bound(
    service_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _backfill_lines(customers=40, days=25, seed=5)
    path = tmp_path / "backfill.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    budget_mb = 0.02
    assert path.stat().st_size > 5 * budget_mb * 2**20  # the sort must spill
    _replay(path, service_settings, "--sort-memory-mb", str(budget_mb))
    err = capsys.readouterr().err
    assert f"produced {len(lines)} records" in err
    assert "sorted runs spilled" in err
    times = _times_by_partition(service_settings)
    assert sum(len(v) for v in times.values()) == len(lines)
    for tp, ts in times.items():
        assert ts == sorted(ts), f"{tp} goes back in event time"
    # --order file: as the file lists them (the report says so)
    _replay(path, service_settings, "--order", "file")
    assert "in file order (--order file)" in capsys.readouterr().err


def test_the_worker_counts_an_input_partition_going_back_in_event_time(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A backfill replayed in event-time order: no regression, and every customer's
    events decided in order (the independent reference agrees). The same kind of file
    replayed as it is (--order file): tierstream_input_time_regressions_total counts
    it, and the log says what to do."""
    settings = service_settings
    sorted_file = tmp_path / "sorted.jsonl"
    sorted_file.write_bytes(b"\n".join(_backfill_lines(30, 20, seed=8)) + b"\n")
    _replay(sorted_file, settings)
    worker = make_worker()
    worker.start()
    wait_caught_up(settings, 90, "the sorted backfill", worker)

    def regressions() -> float:
        return sum(v for _l, v in worker.metric_samples("tierstream_input_time_regressions_total"))

    assert regressions() == 0
    check_against_reference(settings)

    as_is = tmp_path / "as_is.jsonl"
    as_is.write_bytes(b"\n".join(_backfill_lines(30, 20, seed=9, rename="D")) + b"\n")
    _replay(as_is, settings, "--order", "file")
    wait_caught_up(settings, 90, "the backfill as it is", worker)
    samples = worker.metric_samples("tierstream_input_time_regressions_total")
    assert sum(v for _l, v in samples) > 30
    assert {lab["topic"] for lab, v in samples if v} >= {"balances", "transactions"}
    assert "went back in event time" in worker.log_path.read_text()
    capsys.readouterr()
