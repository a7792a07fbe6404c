"""Erasure in the pipeline: state, cache, timers and profile forgotten, audit written.

The store and Redis are modelled the way streams/worker/commit.py writes them (states
and tombstones; profiles deleted, then versioned upserts), so these tests also show
what a worker ends with. The property test checks the result against an independent
model: a customer's state is what its events after its last erasure make of nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from state.rules import load_rules
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.records import BatchResult, RawMessage
from streams.pipeline.state_cache import StateCache
from tests.integration.scenario import Record, balance, erasure, profile, txn

RULES = load_rules()
AUDIT_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[3] / "schemas" / "json" / "audit.schema.json").read_text()
)


class World:
    """What the worker's commit leaves behind: the table store and the Redis profiles."""

    def __init__(self, cache: bool = True) -> None:
        self.store: dict[bytes, bytes] = {}
        self.redis: dict[bytes, dict[str, str]] = {}
        self.offset = 0
        self.processor = BatchProcessor(RULES, cache=StateCache(100) if cache else None)

    def batch(self, records: list[Record]) -> BatchResult:
        msgs = []
        for topic, key, value in records:
            msgs.append(RawMessage(topic, 0, self.offset, key, value, 1_700_000_000_000))
            self.offset += 1
        decoded = [self.processor.decode(m) for m in msgs]
        decoded.sort(key=lambda d: d.ts)  # the aligner's order for a batch at hand
        result = self.processor.apply_ordered(
            decoded, lambda _p, k: self.store.get(k), lambda _p: list(self.store.items())
        )
        for key in result.erased_profiles:
            self.redis.pop(key, None)
        for key, fields in result.profiles.items():
            old = self.redis.get(key)
            if old is None or int(fields["version"]) >= int(old["version"]):
                self.redis[key] = dict(fields)
        for _p, key, value in result.states:
            self.store[key] = value
        for _p, key in result.tombstones:
            self.store.pop(key, None)
        return result


def _audits(result: BatchResult) -> list[dict[str, Any]]:
    return [orjson.loads(o.value) for o in result.outputs if o.topic == "audit"]


def _tier_changes(result: BatchResult) -> list[dict[str, Any]]:
    return [orjson.loads(o.value) for o in result.outputs if o.topic == "tier-changes"]


def test_erasure_forgets_state_cache_timers_and_profile_and_audits_who_asked() -> None:
    w = World()
    w.batch([profile("p1", "c1", 1), balance("b1", "c1", "A", 1, "700000.00")])
    assert b"c1" in w.store and w.redis[b"c1"]["tier"] == "affluent"
    assert w.processor.cache is not None and len(w.processor.cache) == 1

    result = w.batch([erasure("e1", "c1", 2, reason="DSR-7")])

    assert result.tombstones == [(0, b"c1")] and result.erased_profiles == [b"c1"]
    assert b"c1" not in w.store and b"c1" not in w.redis
    assert len(w.processor.cache) == 0 and w.processor.due.size() == 0
    [audit] = _audits(result)
    jsonschema.validate(audit, AUDIT_SCHEMA)
    assert (audit["action"], audit["principal"], audit["customer_id"], audit["result"]) == (
        "erasure",
        "privacy-office",
        "c1",
        "ok",
    )
    assert audit["cause_event_id"] == "e1" and audit["reason"] == "DSR-7"
    assert audit["ts"] == "2026-03-02T02:00:00.000Z"  # the request's time
    assert result.counts == {("erasure-requests", "applied"): 1}
    assert result.erasures == {"erased": 1}
    assert not result.states and not result.profiles and not result.decisions

    # a later event starts from nothing: a new initial tier change
    later = w.batch([balance("b2", "c1", "A", 3, "700000.00")])
    [change] = _tier_changes(later)
    assert change["from_tier"] is None and change["to_tier"] == "affluent"
    assert w.redis[b"c1"]["version"] == "1"


def test_within_a_batch_events_before_the_erasure_go_and_later_ones_start_anew() -> None:
    w = World()
    # offset order: the erasure first; event time decides (the aligner's order)
    result = w.batch(
        [
            erasure("e1", "c1", 2),
            balance("b1", "c1", "A", 1, "700000.00"),
            txn("t1", "c1", "A", 3, "deposit", "10.00", balance_after="700010.00"),
        ]
    )
    assert [c["from_tier"] for c in _tier_changes(result)] == [None, None]  # two initials
    assert result.tombstones == []  # created again after the erasure: a new state
    assert result.erased_profiles == [b"c1"]
    assert w.redis[b"c1"]["version"] == "1"  # the new customer's profile, not the old one
    [audit] = _audits(result)
    assert audit["result"] == "ok"


def test_a_timer_due_in_the_same_batch_does_not_bring_the_erased_customer_back() -> None:
    before = World()
    before.batch([profile("p1", "c1", 1), balance("b1", "c1", "A", 1, "700000.00")])
    # a worker that just got the partition: no cache, no timer index yet; the first
    # tick builds the index from the store, which holds the old state until the
    # tombstone is written
    w = World(cache=False)
    w.store = dict(before.store)
    tick = orjson.dumps(
        {"event_id": "tick-0-1798761600000", "partition": 0, "ts": "2027-01-01T00:00:00Z"}
    )
    result = w.batch([erasure("e1", "c1", 2), ("ticks", None, tick)])
    assert result.counts[("ticks", "applied")] == 1
    assert result.tombstones == [(0, b"c1")]
    assert not result.states and not result.decisions and b"c1" not in w.store


def test_a_replayed_or_unknown_erasure_is_harmless_and_writes_the_same_audit_id() -> None:
    w = World()
    w.batch([balance("b1", "c1", "A", 1, "700000.00")])
    first = _audits(w.batch([erasure("e1", "c1", 2)]))[0]
    again = w.batch([erasure("e1", "c1", 2)])
    second = _audits(again)[0]
    assert second["event_id"] == first["event_id"]
    assert (first["result"], second["result"]) == ("ok", "not_found")
    assert again.erasures == {"not_found": 1}
    assert _audits(w.batch([erasure("e9", "nobody", 2)]))[0]["result"] == "not_found"


@settings(max_examples=60, deadline=None)
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(["c1", "c2", "c3"]), st.booleans(), st.integers(1, 9)),
        min_size=1,
        max_size=30,
    ),
    cuts=st.lists(st.integers(1, 29), max_size=5),
    cache=st.booleans(),
)
def test_after_any_batching_a_customer_is_what_its_events_after_its_last_erasure_make(
    plan: list[tuple[str, bool, int]], cuts: list[int], cache: bool
) -> None:
    """Random balances and erasures for three customers, one per hour, cut into random
    batches: the store and Redis equal an independent model that never erases -- each
    customer's events after their last erasure, applied to nothing."""
    records: list[Record] = []
    for i, (cid, erase, amount) in enumerate(plan):
        day, hour = 1 + i // 20, i % 20
        if erase:
            records.append(erasure(f"e{i}", cid, day, hour))
        else:
            records.append(balance(f"b{i}", cid, "A", day, f"{amount * 100000}.00", hour=hour))
    w = World(cache=cache)
    bounds = sorted({c for c in cuts if c < len(records)})
    for start, end in zip([0, *bounds], [*bounds, len(records)], strict=True):
        w.batch(records[start:end])

    survivors: list[Record] = []
    for cid in ("c1", "c2", "c3"):
        mine = [(i, r) for i, r in enumerate(records) if r[1] == cid.encode()]
        last = max((i for i, r in mine if r[0] == "erasure-requests"), default=-1)
        survivors += [r for i, r in mine if i > last]
    model = World(cache=False)
    model.batch(survivors)
    assert w.store == model.store
    assert w.redis == model.redis
