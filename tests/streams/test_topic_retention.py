"""topics create keeps offer-responses for 400 days (issue 23: the KPI job reads it back
for year-on-year conversion); the security branch's per-topic table holds the decisions'."""

from __future__ import annotations

from streams.settings import Settings
from streams.topics import DAY_MS, RETENTION_DEFAULTS, topic_specs


def test_offer_responses_outlive_the_brokers_default() -> None:
    specs = {s.name: s for s in topic_specs(Settings(topic_prefix="p."))}
    assert specs["p.offer-responses"].config == {
        "retention.ms": str(400 * DAY_MS),
        "retention.bytes": "-1",
    }
    assert RETENTION_DEFAULTS["offer-responses"] == 34_560_000_000
    assert specs["p.offer-responses"].partitions == specs["p.transactions"].partitions
