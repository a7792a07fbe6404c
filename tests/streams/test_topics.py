"""Topic layout without a broker: retention by design and the replication rule."""

from __future__ import annotations

import pytest

from schemas.events import INPUT_TOPICS
from streams.settings import Settings, parse_duration_ms, parse_retention
from streams.topics import (
    DAY_MS,
    RETENTION_DEFAULTS,
    TopologyError,
    check_replication,
    topic_specs,
)


def _configs(settings: Settings) -> dict[str, dict[str, str]]:
    return {s.name: s.config for s in topic_specs(settings)}


def test_outputs_get_explicit_retention_and_inputs_the_brokers() -> None:
    configs = _configs(Settings(topic_prefix="p."))
    assert configs["p.audit"] == {"retention.ms": str(400 * DAY_MS), "retention.bytes": "-1"}
    assert configs["p.dead-letters"]["retention.ms"] == str(30 * DAY_MS)
    for name in ("tier-changes", "offers", "alerts"):
        assert configs[f"p.{name}"]["retention.ms"] == str(400 * DAY_MS)
    # offer-responses, the one input kept: tierstream kpi reads it back for a
    # year-on-year conversion (issue 23)
    assert configs["p.offer-responses"] == {
        "retention.ms": str(400 * DAY_MS),
        "retention.bytes": "-1",
    }
    for name in INPUT_TOPICS:
        if name not in ("erasure-requests", "offer-responses"):
            assert configs[f"p.{name}"] == {}
    # erasure requests are kept by key: a replay must still find every one of them
    assert configs["p.erasure-requests"] == {"cleanup.policy": "compact"}
    # the changelog's name derives from the topic prefix (no TIERSTREAM_APP_ID given)
    assert configs["p.tierstream-customer-state-changelog"]["cleanup.policy"] == "compact"


def test_retention_is_configurable_per_topic_from_env_and_refuses_unknown_topics() -> None:
    s = Settings.from_env({"TIERSTREAM_RETENTION": "audit=730d, dead-letters=12h,alerts=forever"})
    configs = _configs(s)
    assert configs["audit"]["retention.ms"] == str(730 * DAY_MS)
    assert configs["dead-letters"]["retention.ms"] == str(12 * 3_600_000)
    assert configs["alerts"]["retention.ms"] == "-1"
    assert configs["offers"]["retention.ms"] == str(RETENTION_DEFAULTS["offers"])
    # an input may be given one too
    assert _configs(Settings(retention={"transactions": 7 * DAY_MS}))["transactions"]
    with pytest.raises(TopologyError, match="unknown topics"):
        topic_specs(Settings(retention={"audits": DAY_MS}))


@pytest.mark.parametrize(
    ("text", "ms"), [("400d", 400 * DAY_MS), ("90s", 90_000), ("1500ms", 1500), ("30m", 1_800_000)]
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text, "x") == ms


@pytest.mark.parametrize("text", ["", "0d", "-5d", "10", "1w", "1.5d", "d"])
def test_bad_durations_name_where(text: str) -> None:
    with pytest.raises(ValueError, match="TIERSTREAM_RETENTION"):
        parse_retention(f"audit={text}")
    with pytest.raises(ValueError, match="topic=duration"):
        parse_retention("audit")


def test_replication_one_for_audit_needs_the_development_flag() -> None:
    with pytest.raises(TopologyError, match="--dev-single-replica"):
        check_replication(Settings(replication_factor=1))
    check_replication(Settings(replication_factor=1, dev_single_replica=True))
    check_replication(Settings(replication_factor=3))
    assert Settings.from_env({"TIERSTREAM_DEV_SINGLE_REPLICA": "true"}).dev_single_replica
    with pytest.raises(ValueError, match="TIERSTREAM_DEV_SINGLE_REPLICA"):
        Settings.from_env({"TIERSTREAM_DEV_SINGLE_REPLICA": "maybe"})


def test_the_rules_topic_is_one_compacted_partition_kept_forever_and_takes_no_retention() -> None:
    spec = next(s for s in topic_specs(Settings(topic_prefix="p.")) if s.name == "p.rules")
    assert spec.partitions == 1
    assert spec.config == {
        "cleanup.policy": "compact",
        "message.timestamp.type": "LogAppendTime",
        "retention.ms": "-1",
        "retention.bytes": "-1",
    }
    with pytest.raises(TopologyError, match="kept forever"):
        topic_specs(Settings(retention={"rules": DAY_MS}))
