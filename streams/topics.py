"""Topic layout: what `tierstream topics create` makes and what the worker checks.

Every input topic, every output topic and the state table's changelog get the same
partition count, because one customer's events must meet in one partition (inputs
keyed by customer_id, Java murmur2 partitioner) and the changelog partition of a
customer's state must be the partition its events arrive on.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from schemas.events import INPUT_TOPICS, OUTPUT_TOPICS, TICK_TOPICS, TOPIC_AUDIT, TOPIC_RULES
from streams.settings import Settings

#: Name of the faust table holding customer state; faust names its changelog
#: ``<app_id>-<table>-changelog``.
STATE_TABLE = "customer-state"


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-{STATE_TABLE}-changelog"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the service needs, with explicit partitions and replication."""
    n, rf = settings.partitions, settings.replication_factor
    names = (*INPUT_TOPICS, *TICK_TOPICS, *OUTPUT_TOPICS, TOPIC_AUDIT)
    specs = [TopicSpec(settings.topic(t), n, rf, {}) for t in names]
    specs.append(
        TopicSpec(
            changelog_topic(settings),
            n,
            rf,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
        )
    )
    specs.append(rules_topic_spec(settings))
    return specs


def rules_topic_spec(settings: Settings) -> TopicSpec:
    """The rules versions (streams/rules_log.py): one partition (one order of
    publications), compacted with a key per publication (nothing is ever deleted), and
    stamped by the broker (LogAppendTime): the append time is what a version's
    ``effective_from`` is checked against. Every worker reads all of it."""
    return TopicSpec(
        settings.topic(TOPIC_RULES),
        1,
        settings.replication_factor,
        {"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"},
    )


class TopologyError(RuntimeError):
    """The cluster's topics do not match what the service needs."""


def create_topics(settings: Settings, timeout: float = 30.0) -> dict[str, str]:
    """Create missing topics; existing ones are left alone (idempotent).

    Returns topic -> "created" | "exists". An existing topic with a different
    partition count is reported as an error, never silently accepted.
    """
    admin = AdminClient(settings.confluent_config())
    existing = admin.list_topics(timeout=timeout).topics
    status: dict[str, str] = {}
    new: list[NewTopic] = []
    for spec in topic_specs(settings):
        if spec.name in existing:
            have = len(existing[spec.name].partitions)
            if have != spec.partitions:
                raise TopologyError(
                    f"topic {spec.name} exists with {have} partitions, expected "
                    f"{spec.partitions}; co-partitioning needs equal counts"
                )
            status[spec.name] = "exists"
        else:
            new.append(
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=spec.replication,
                    config=spec.config,
                )
            )
    if new:
        for name, fut in admin.create_topics(new, operation_timeout=timeout).items():
            try:
                fut.result()
                status[name] = "created"
            except KafkaException as exc:
                if exc.args and exc.args[0].name() == "TOPIC_ALREADY_EXISTS":
                    status[name] = "exists"
                else:
                    raise
    return status


def verify_copartitioned(settings: Settings, timeout: float = 30.0) -> int:
    """Check inputs, outputs and the changelog exist with one partition count.

    Returns that count; raises TopologyError with what to do otherwise.
    """
    admin = AdminClient(settings.confluent_config())
    topics = admin.list_topics(timeout=timeout).topics
    counts: dict[str, int] = {}
    missing: list[str] = []
    rules = rules_topic_spec(settings).name
    for spec in topic_specs(settings):
        meta = topics.get(spec.name)
        if meta is None:
            missing.append(spec.name)
        elif spec.name != rules:  # read whole by every worker: not co-partitioned
            counts[spec.name] = len(meta.partitions)
    if missing:
        raise TopologyError(
            f"missing topics: {', '.join(missing)} — run `tierstream topics create` first"
        )
    distinct = set(counts.values())
    if len(distinct) != 1:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        raise TopologyError(
            f"topics are not co-partitioned (partition counts differ: {detail}); "
            "one customer's events would not meet in one partition"
        )
    return distinct.pop()
