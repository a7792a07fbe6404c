"""Two deployments on one cluster, told apart only by their topic prefix (issue 18).

Before, ``TIERSTREAM_TOPIC_PREFIX`` prefixed the inputs and outputs but not the consumer
group or the state changelog: two environments with different prefixes and no
``TIERSTREAM_APP_ID`` joined one consumer group ``tierstream`` and wrote one changelog
``tierstream-customer-state-changelog``, without a word. Now the default app id is
``<prefix>tierstream``: each worker here is started exactly as a user would start it,
with a prefix and no app id, and each gets its own group, offsets and changelog.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.events import INPUT_TOPICS
from streams.settings import Settings
from streams.topics import changelog_topic, create_topics, topic_specs
from tests.integration.harness import WorkerProcess, free_port, produce, wait_caught_up
from tests.integration.scenario import balance


@dataclass
class PrefixOnlyWorker(WorkerProcess):
    """A worker started with a topic prefix and *no* TIERSTREAM_APP_ID."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("TIERSTREAM_APP_ID", None)
        return env


@pytest.fixture
def two_deployments(
    kafka_bootstrap: str, redis_url: str, redis_key_prefix: str, tmp_path: Path
) -> Iterator[list[Settings]]:
    tag = secrets.token_hex(4)
    deployments = [
        Settings(
            kafka_bootstrap=kafka_bootstrap,
            redis_url=redis_url,
            redis_key_prefix=f"{redis_key_prefix}{env}:",
            topic_prefix=f"iso{tag}-{env}.",
            partitions=2,
            store="memory://",
            web_port=free_port(),
            data_dir=str(tmp_path / env),
            tick_interval=0,
            dev_single_replica=True,  # one local broker
        )
        for env in ("dev", "test")
    ]
    for s in deployments:
        assert s.app_id_derived
        create_topics(s)
    yield deployments
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    names = [spec.name for s in deployments for spec in topic_specs(s)]
    for fut in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):
            fut.result()
    for fut in admin.delete_consumer_groups([s.app_id for s in deployments]).values():
        with contextlib.suppress(Exception):
            fut.result()


def _committed(settings: Settings, group: str, topic: str) -> dict[int, int]:
    admin = AdminClient(settings.confluent_config())
    req = ConsumerGroupTopicPartitions(
        group, [TopicPartition(settings.topic(topic), p) for p in range(settings.partitions)]
    )
    result = admin.list_consumer_group_offsets([req])[group].result()
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def _changelog_keys(settings: Settings, topic: str) -> set[bytes]:
    c = Consumer(
        settings.confluent_config(
            **{"group.id": f"reader-{secrets.token_hex(4)}", "enable.auto.commit": False}
        )
    )
    try:
        tps = [TopicPartition(topic, p, 0) for p in range(settings.partitions)]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        c.assign(tps)
        keys: set[bytes] = set()
        left = sum(ends.values())
        while left > 0:
            msg = c.poll(5)
            assert msg is not None, f"changelog {topic} ended early"
            if msg.error():
                continue
            keys.add(msg.key())
            left -= 1
        return keys
    finally:
        c.close()


def test_two_prefixes_without_an_app_id_share_no_group_and_no_changelog(
    two_deployments: list[Settings], tmp_path: Path
) -> None:
    dev, test = two_deployments
    assert (dev.app_id, test.app_id) == (
        f"{dev.topic_prefix}tierstream",
        f"{test.topic_prefix}tierstream",
    )
    workers = [
        PrefixOnlyWorker(s, tmp_path / "logs", name=f"worker-{i}")
        for i, s in enumerate(two_deployments)
    ]
    for w in workers:
        assert "TIERSTREAM_APP_ID" not in w.env()
        w.start()
    try:
        produce(dev, [balance("d1", "cDev", "A", 2, "600000.00")])
        produce(test, [balance("t1", "cTest", "A", 2, "700000.00")])
        for s, w in zip(two_deployments, workers, strict=True):
            wait_caught_up(s, 60, f"{w.name} to commit its input", w)
        for s, w, own, other in (
            (dev, workers[0], b"cDev", b"cTest"),
            (test, workers[1], b"cTest", b"cDev"),
        ):
            # the worker is the one member of the group named for its prefix
            admin = AdminClient(s.confluent_config())
            group = admin.describe_consumer_groups([s.app_id])[s.app_id].result()
            assert len(group.members) == 1, group
            # its own consumer group committed its own input, and only that
            assert sum(_committed(s, s.app_id, "balances").values()) == 1
            other_settings = test if s is dev else dev
            assert _committed(other_settings, s.app_id, "balances") == {}
            # its own changelog holds its own customer, and only that
            assert _changelog_keys(s, changelog_topic(s)) == {own}
            assert other not in _changelog_keys(s, changelog_topic(s))
            status, body = w.get("/health")
            # every input partition of its own topics is its own: no group shared
            assert status == 200
            assert body["assigned_partitions"] == len(INPUT_TOPICS) * s.partitions
        assert changelog_topic(dev) != changelog_topic(test)
    finally:
        for w in workers:
            w.stop()
