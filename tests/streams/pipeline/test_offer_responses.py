"""Offer responses through BatchProcessor and into the metrics (issue 23): counted by
the offer's kind and tier and the outcome, unattributed ones counted ``unmatched``,
no state stored for a customer who has none, bad records dead-lettered."""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import generate_latest

from state.rules import load_rules
from streams.metrics import Metrics
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.records import RawMessage
from tests.integration.scenario import Record, assessment, balance, erasure, profile

RULES = load_rules()


def response(
    eid: str, cid: str, offer_id: str, outcome: str, day: int, hour: int = 12, **extra: Any
) -> Record:
    v = {
        "event_id": eid,
        "customer_id": cid,
        "ts": f"2026-03-{day:02d}T{hour:02d}:00:00+08:00",
        "offer_event_id": offer_id,
        "outcome": outcome,
        **extra,
    }
    return ("offer-responses", cid.encode(), orjson.dumps(v))


def _msgs(records: list[Record]) -> list[RawMessage]:
    return [RawMessage(t, 0, i, k, v, 1_700_000_000_000) for i, (t, k, v) in enumerate(records)]


class Store(dict[bytes, bytes]):
    def load(self, _p: int, key: bytes) -> bytes | None:
        return self.get(key)

    def keep(self, states: list[tuple[int, bytes, bytes]]) -> None:
        self.update({k: v for _p, k, v in states})


def test_responses_are_counted_by_the_offers_kind_and_tier_and_unmatched_ones_apart() -> None:
    proc, store = BatchProcessor(RULES), Store()
    first = proc.process(
        _msgs(
            [
                profile("p1", "c1", 1),
                assessment("a1", "c1", 1, 50),
                balance("b1", "c1", "A", 2, "600000.00"),  # affluent: a wealth offer
            ]
        ),
        store.load,
    )
    store.keep(first.states)
    (offer,) = [d for d in first.decisions if d.topic == "offers"]
    second = proc.process(
        _msgs(
            [
                balance("b2", "c1", "A", 3, "2000000.00"),  # hnw now: the tier is the offer's
                response("r1", "c1", offer.event_id, "accepted", 4),
                response("r1", "c1", offer.event_id, "accepted", 4),  # redelivered
                response("r2", "c1", "f" * 32, "declined", 4),  # names no offer
                response("r3", "nobody", "e" * 32, "ignored", 4),  # no such customer
                response("r4", "c1", offer.event_id, "maybe", 4),  # bad: dead letter
                ("offer-responses", b"c1", b'{"event_id": "r5"}'),  # bad: dead letter
            ]
        ),
        store.load,
    )
    assert second.offer_responses == {("wealth_products", "affluent", "accepted"): 1}
    assert second.counts == {
        ("balances", "applied"): 1,
        ("offer-responses", "applied"): 1,
        ("offer-responses", "duplicate"): 1,
        ("offer-responses", "unmatched"): 2,
        ("offer-responses", "dead_letter"): 2,
    }
    dead = [orjson.loads(o.value) for o in second.outputs if o.topic == "dead-letters"]
    assert [d["error"].split(":")[0] for d in dead] == ["$.outcome", "$.customer_id"]
    assert [k for _p, k, _v in second.states] == [b"c1"]  # nothing stored for "nobody"
    assert b"nobody" not in second.profiles

    m = Metrics()
    m.observe_batch(second)
    text = generate_latest(m.registry).decode()
    assert (
        'tierstream_offer_responses_total{kind="wealth_products",outcome="accepted",'
        'tier="affluent"} 1.0'
    ) in text
    assert (
        'tierstream_events_consumed_total{result="unmatched",topic="offer-responses"} 2.0'
    ) in text


def test_a_response_for_an_unknown_customer_then_its_first_event_in_one_batch() -> None:
    """An unmatched response for a customer without state leaves nothing behind in the
    batch either: the customer's first event starts from nothing."""
    proc = BatchProcessor(RULES)
    res = proc.process(
        _msgs(
            [
                response("r1", "c7", "a" * 32, "accepted", 1, hour=9),
                balance("b1", "c7", "A", 1, "700000.00"),
            ]
        ),
        lambda p, k: None,
    )
    assert res.counts[("offer-responses", "unmatched")] == 1
    assert [d.topic for d in res.decisions] == ["tier-changes"]
    alone = BatchProcessor(RULES).process(
        _msgs([balance("b1", "c7", "A", 1, "700000.00")]), lambda p, k: None
    )
    assert res.states == alone.states


def test_an_erasure_after_a_response_for_an_unknown_customer_finds_nothing() -> None:
    """The response created no customer, so the erasure reports not_found, writes no
    tombstone and the audit record says so."""
    res = BatchProcessor(RULES).process(
        _msgs(
            [
                response("r1", "c8", "a" * 32, "accepted", 1, hour=9),
                erasure("e1", "c8", 1, hour=11),
            ]
        ),
        lambda p, k: None,
    )
    assert res.counts[("offer-responses", "unmatched")] == 1
    assert res.erasures == {"not_found": 1}
    assert res.states == []
    (audit,) = [orjson.loads(o.value) for o in res.outputs if o.topic == "audit"]
    assert audit["result"] == "not_found"
