"""Relationship care end to end: ticks drive dormancy, review cadence, birthdays and a
campaign through a real worker; a restart neither loses nor repeats a due trigger."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from state.rules import load_rules
from streams.settings import Settings
from tests.integration.harness import (
    WorkerProcess,
    consume_all,
    produce,
    wait_caught_up,
    wait_until,
)
from tests.integration.oracle import compare_decisions, recompute
from tests.integration.scenario import assessment, balance, profile, txn

OUTPUTS = ("tier-changes", "offers", "alerts")
CAMPAIGN_RULES = """
[[campaigns]]
id = "summer-2026"
start = 2026-06-01
end = 2026-06-30
tiers = ["affluent", "hnw", "private"]
kind = "summer_wealth"
spread_hours = 1
"""


def contact(eid: str, cid: str, when: str) -> tuple[str, bytes, bytes]:
    v = {"event_id": eid, "customer_id": cid, "ts": when, "channel": "phone", "outcome": "reached"}
    return ("contacts", cid.encode(), orjson.dumps(v))


def care_inputs() -> list[tuple[str, bytes | None, bytes | None]]:
    r = []
    # H: hnw with consent: cadence reviews, a contact, a birthday, dormancy, a campaign
    r += [profile("h-p", "cH", 1, birth="1980-05-10"), assessment("h-r", "cH", 1, 50)]
    r += [balance("h-b", "cH", "H1", 1, "2000000.00", hour=11)]  # after the consent
    r += [txn("h-t", "cH", "H1", 2, "card_payment", "100", "1999900.00")]
    r += [contact("h-c", "cH", "2026-04-10T15:00:00+08:00")]
    # M: mass with consent: only the birthday greeting
    r += [profile("m-p", "cM", 1, birth="1990-04-01"), balance("m-b", "cM", "M1", 1, "1000.00")]
    # N: hnw without consent: dormancy alert, reviews (service), no marketing offers
    r += [profile("n-p", "cN", 1, consent=False, birth="1970-05-20")]
    r += [balance("n-b", "cN", "N1", 1, "3000000.00")]
    return r


def daily_ticks(settings: Settings, first: datetime, days: int) -> Iterator[tuple[int, bytes]]:
    for d in range(days):
        ts = first + timedelta(days=d)
        ms = int(ts.timestamp() * 1000)
        for p in range(settings.partitions):
            value = {"event_id": f"tick-{p}-{ms}", "partition": p, "ts": ts.isoformat()}
            yield p, orjson.dumps(value)


def produce_ticks(settings: Settings, ticks: Iterator[tuple[int, bytes]]) -> None:
    producer = Producer(settings.producer_config())
    for p, value in ticks:
        producer.produce(settings.topic("ticks"), value=value, partition=p)
    assert producer.flush(30) == 0


@pytest.fixture
def care_settings(service_settings: Settings, tmp_path: Path) -> Settings:
    rules = tmp_path / "rules.toml"
    rules.write_text(CAMPAIGN_RULES)
    return service_settings.with_overrides(rules_path=str(rules))


def _outputs(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    return {t: [r["value"] for r in consume_all(settings, t)] for t in OUTPUTS}


def _assert_equals_oracle(settings: Settings, got: dict[str, list[dict[str, Any]]]) -> None:
    truth = recompute(settings, load_rules(settings.rules_path))
    for topic in OUTPUTS:
        expected = [d.to_record() for d in truth.decisions if d.topic == topic]
        cmp = compare_decisions(expected, got[topic], allow_redelivery=False)
        assert cmp.ok, (topic, cmp)


FIRST_TICK = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_ticks_fire_dormancy_cadence_birthday_and_campaign(
    care_settings: Settings, make_worker: Callable[..., WorkerProcess]
) -> None:
    settings = care_settings
    produce(settings, care_inputs())
    produce_ticks(settings, daily_ticks(settings, FIRST_TICK, 95))
    worker = make_worker(rules_path=settings.rules_path)
    worker.start()
    wait_caught_up(settings, 120, "the worker to commit all input", worker)
    got = _outputs(settings)
    offers = [(o["customer_id"], o["kind"], o["ts"][:10]) for o in got["offers"]]
    alerts = [(a["customer_id"], a["kind"], a["ts"][:10]) for a in got["alerts"]]
    assert ("cH", "relationship_manager", "2026-03-01") in offers  # entering hnw
    timer_offers = [o for o in offers if o[1] != "relationship_manager"]
    # H: reviews every 30 days from entering hnw (03-01) until the contact on 04-10
    # resets the clock; birthday on 05-10; dormant 90 days after 03-02; the campaign
    assert ("cH", "relationship_review", "2026-03-30") in timer_offers  # 03-31 00:00 +08:00
    assert ("cH", "relationship_review", "2026-04-29") not in timer_offers  # contact reset
    assert ("cH", "relationship_review", "2026-05-09") in timer_offers  # 04-10 + 30 days
    assert ("cH", "birthday_greeting", "2026-05-09") in timer_offers  # 05-10 local midnight
    assert ("cH", "reactivation", "2026-05-30") in timer_offers  # 03-02 + 90 days
    assert ("cH", "dormant_high_value", "2026-05-30") in alerts
    assert any(
        o[:2] == ("cH", "summer_wealth") and o[2] in ("2026-05-31", "2026-06-01") for o in offers
    )
    # M: mass, so only the birthday
    assert [o for o in timer_offers if o[0] == "cM"] == [("cM", "birthday_greeting", "2026-03-31")]
    # N: no marketing consent: the dormancy alert and no marketing offer -- but the
    # relationship reviews, service contacts that need no marketing consent (issue 22)
    assert {o[1] for o in offers if o[0] == "cN"} == {"relationship_review"}
    assert ("cN", "relationship_review", "2026-03-30") in offers
    assert all(o["purpose"] == "service" for o in got["offers"] if o["customer_id"] == "cN")
    assert ("cN", "dormant_high_value", "2026-05-29") in alerts  # seen 03-01 + 90 days
    # each trigger fired exactly once, and the oracle agrees record for record
    ids = [o["event_id"] for o in got["offers"]] + [a["event_id"] for a in got["alerts"]]
    assert len(ids) == len(set(ids))
    _assert_equals_oracle(settings, got)


def test_restart_neither_loses_nor_repeats_a_due_trigger(
    care_settings: Settings, make_worker: Callable[..., WorkerProcess]
) -> None:
    settings = care_settings
    produce(settings, care_inputs())
    ticks = list(daily_ticks(settings, FIRST_TICK, 95))
    half = len(ticks) // 2
    produce_ticks(settings, iter(ticks[:half]))
    worker = make_worker(rules_path=settings.rules_path, store="rocksdb://")
    worker.start()
    wait_caught_up(settings, 120, "first half", worker)
    assert worker.stop() == 0
    produce_ticks(settings, iter(ticks[half:]))
    worker.start()
    wait_caught_up(settings, 120, "second half", worker)
    got = _outputs(settings)
    ids = [o["event_id"] for t in OUTPUTS for o in got[t]]
    assert len(ids) == len(set(ids)), "a trigger fired twice across the restart"
    _assert_equals_oracle(settings, got)


def test_the_worker_clock_writes_one_tick_per_owned_partition(
    service_settings: Settings, make_worker: Callable[..., WorkerProcess]
) -> None:
    settings = service_settings
    worker = make_worker(tick_interval=1.0)
    worker.start()
    wait_until(
        lambda: (
            {r["partition"] for r in consume_all(settings, "ticks", 5)}
            >= set(range(settings.partitions))
        ),
        60,
        "ticks on every partition",
    )
    ticks = consume_all(settings, "ticks", 5)
    for r in ticks:
        assert r["value"]["partition"] == r["partition"]
        assert r["value"]["event_id"] == f"tick-{r['partition']}-" + str(
            int(datetime.fromisoformat(r["value"]["ts"].replace("Z", "+00:00")).timestamp() * 1000)
        )
    # the worker consumes its own ticks (a moment after they are in the topic)
    applied = 'tierstream_events_consumed_total{result="applied",topic="ticks"}'
    wait_until(lambda: applied in worker.get("/metrics")[1], 30, "ticks applied")
