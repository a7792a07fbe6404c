"""Topic layout: what `tierstream topics create` makes and what the worker checks.

Every input topic, every output topic and the state table's changelog get the same
partition count, because one customer's events must meet in one partition (inputs
keyed by customer_id, Java murmur2 partitioner) and the changelog partition of a
customer's state must be the partition its events arrive on.

Retention by design: the broker's default (7 days on a stock broker, whatever the
cluster's admin chose elsewhere) is right for no topic that outlives a batch. Each
output topic gets an explicit ``retention.ms`` (``RETENTION_DEFAULTS``: the audit
trail and the decisions 400 days, raw dead letters 30 days), and ``retention.bytes=-1``
so a broker-wide size cap cannot cut them shorter; ``TIERSTREAM_RETENTION`` /
``--retention`` override any topic's. ``topics create`` sets them on new topics and
brings existing ones to them (``incremental_alter_configs``), so re-running it
converges. The audit trail must survive a broker: replication 1 for ``audit`` is
refused unless the development flag says a single local broker is all there is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from confluent_kafka.cimpl import NewTopic

from schemas.events import (
    INPUT_TOPICS,
    OUTPUT_TOPICS,
    TICK_TOPICS,
    TOPIC_ALERTS,
    TOPIC_AUDIT,
    TOPIC_DEAD_LETTERS,
    TOPIC_ERASURE_REQUESTS,
    TOPIC_OFFER_RESPONSES,
    TOPIC_OFFERS,
    TOPIC_RULES,
    TOPIC_TIER_CHANGES,
)
from streams.settings import Settings

DAY_MS: Final = 86_400_000
#: retention.ms per contract topic name; a topic not listed keeps the broker's default
#: (the inputs and the clock: tierstream never reads them back after processing, and
#: the bank's own retention of its source data decides how far a replay can go).
#: A new topic that must outlive a batch gets a row here (and a line in docs/topics.md).
RETENTION_DEFAULTS: Final[dict[str, int]] = {
    # who read which customer: long enough for a yearly review and its follow-up
    TOPIC_AUDIT: 400 * DAY_MS,
    # raw copies of rejected input (personal data, redacted where configured): long
    # enough to find the cause and replay, short enough not to become a second archive
    TOPIC_DEAD_LETTERS: 30 * DAY_MS,
    # the decisions downstream systems and reviews read back (KPIs over a year)
    TOPIC_TIER_CHANGES: 400 * DAY_MS,
    TOPIC_OFFERS: 400 * DAY_MS,
    TOPIC_ALERTS: 400 * DAY_MS,
    # an input: the KPI job (tierstream kpi) reads it back with the offers for a
    # year-on-year conversion, so it must outlive the broker's 7 days
    TOPIC_OFFER_RESPONSES: 400 * DAY_MS,
    # the versions of the rules: kept forever (and compacted, one key per publication,
    # so nothing is ever removed): a replay of any past input needs the versions that
    # decided it, and the history is what was in force when (rules_topic_spec)
    TOPIC_RULES: -1,
}
#: Topics kept by key rather than by time. ``erasure-requests`` is compacted: the newest
#: request per customer stays as long as the topic exists, so a replay of the inputs
#: (which still hold the customer's earlier events until their retention runs out) erases
#: the customer again at the same point -- an expired request would bring them back.
#: It holds ids and who asked, no profile data: the record that the erasure was asked for.
#: ``rules`` too (rules_topic_spec): one key per publication, so nothing is ever removed.
COMPACTED: Final = (TOPIC_ERASURE_REQUESTS, TOPIC_RULES)
#: Topics whose loss would break a guarantee: replication 1 needs the development flag.
NEEDS_REPLICAS: Final = (TOPIC_AUDIT,)

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


#: Every topic ``topics create`` makes, by contract name (the changelog aside).
CONTRACT_TOPICS: Final = (*INPUT_TOPICS, *TICK_TOPICS, *OUTPUT_TOPICS, TOPIC_AUDIT)


def retention_ms(settings: Settings) -> dict[str, int]:
    """retention.ms per contract topic: the defaults with the settings' overrides."""
    if TOPIC_RULES in settings.retention:
        raise TopologyError(
            "TIERSTREAM_RETENTION/--retention: the rules topic is kept forever (a replay "
            "needs every version that decided its input); it takes no retention"
        )
    unknown = sorted(set(settings.retention) - set(CONTRACT_TOPICS))
    if unknown:
        raise TopologyError(
            f"TIERSTREAM_RETENTION/--retention name unknown topics {unknown}; "
            f"known: {', '.join(CONTRACT_TOPICS)}"
        )
    return {**RETENTION_DEFAULTS, **settings.retention}


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the service needs, with explicit partitions, replication and
    retention."""
    n, rf = settings.partitions, settings.replication_factor
    retention = retention_ms(settings)
    specs = [
        TopicSpec(settings.topic(t), n, rf, _retention_config(retention.get(t), t in COMPACTED))
        for t in CONTRACT_TOPICS
    ]
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
        {
            "cleanup.policy": "compact",
            "message.timestamp.type": "LogAppendTime",
            "retention.ms": str(RETENTION_DEFAULTS[TOPIC_RULES]),
            "retention.bytes": "-1",
        },
    )


def _retention_config(ms: int | None, compacted: bool = False) -> dict[str, str]:
    if compacted:
        return {"cleanup.policy": "compact"}
    if ms is None:
        return {}
    return {"retention.ms": str(ms), "retention.bytes": "-1"}


class TopologyError(RuntimeError):
    """The cluster's topics do not match what the service needs."""


def check_replication(settings: Settings) -> None:
    """Replication 1 for the audit trail only with the development flag."""
    if settings.replication_factor < 2 and not settings.dev_single_replica:
        raise TopologyError(
            f"replication factor {settings.replication_factor} for "
            f"{', '.join(settings.topic(t) for t in NEEDS_REPLICAS)}: one broker's disk "
            "would hold the only copy of the audit trail. Set TIERSTREAM_REPLICATION_FACTOR "
            "(3 in production), or for a single development broker pass --dev-single-replica "
            "(TIERSTREAM_DEV_SINGLE_REPLICA=true)"
        )


def create_topics(settings: Settings, timeout: float = 30.0) -> dict[str, str]:
    """Create missing topics and bring existing ones to their retention (idempotent).

    Returns topic -> "created" | "exists" | "updated" (an existing topic whose
    retention was changed). An existing topic with a different partition count is
    reported as an error, never silently accepted; so is replication 1 for the audit
    topic without the development flag (``check_replication``), also when it exists.
    """
    check_replication(settings)
    admin = AdminClient(settings.confluent_config())
    existing = admin.list_topics(timeout=timeout).topics
    status: dict[str, str] = {}
    new: list[NewTopic] = []
    present: list[TopicSpec] = []
    needs_replicas = {settings.topic(t) for t in NEEDS_REPLICAS}
    for spec in topic_specs(settings):
        if spec.name in existing:
            parts = existing[spec.name].partitions
            have = len(parts)
            if have != spec.partitions:
                raise TopologyError(
                    f"topic {spec.name} exists with {have} partitions, expected "
                    f"{spec.partitions}; co-partitioning needs equal counts"
                )
            replicas = min((len(p.replicas) for p in parts.values()), default=0)
            if spec.name in needs_replicas and replicas < 2 and not settings.dev_single_replica:
                raise TopologyError(
                    f"topic {spec.name} exists with replication {replicas}; the audit trail "
                    "needs at least 2 (reassign its partitions), or pass --dev-single-replica "
                    "on a single development broker"
                )
            status[spec.name] = "exists"
            present.append(spec)
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
    for name in _align_configs(admin, present, timeout):
        status[name] = "updated"
    return status


def _align_configs(admin: AdminClient, specs: list[TopicSpec], timeout: float) -> list[str]:
    """Set the retention of existing topics where it differs; returns their names."""
    wanted = {s.name: s.config for s in specs if s.config}
    if not wanted:
        return []
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in wanted]
    changes: list[ConfigResource] = []
    for res, fut in admin.describe_configs(resources, request_timeout=timeout).items():
        have = fut.result()
        diff = {k: v for k, v in wanted[res.name].items() if k not in have or have[k].value != v}
        if diff:
            entries = [
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in diff.items()
            ]
            changes.append(
                ConfigResource(ResourceType.TOPIC, res.name, incremental_configs=entries)
            )
    if not changes:
        return []
    for fut in admin.incremental_alter_configs(changes, request_timeout=timeout).values():
        fut.result()
    return sorted(r.name for r in changes)


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
