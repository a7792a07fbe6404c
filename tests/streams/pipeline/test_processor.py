"""BatchProcessor: decode -> merge -> core -> outputs, with the real decoder and core."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import INPUT_TOPICS
from schemas.redaction import Redactor
from state.rules import load_rules
from streams.pipeline.aligner import InputAligner
from streams.pipeline.bad_input import BadInputGuard, TooMuchBadInput
from streams.pipeline.processor import BatchProcessor, merge_by_event_time
from streams.pipeline.records import Decoded, RawMessage
from tests.integration.scenario import balance, profile, txn

RULES = load_rules()


def _msgs(
    records: list[tuple[str, bytes | None, bytes | None]], partition: int = 0
) -> list[RawMessage]:
    return [
        RawMessage(t, partition, i, k, v, 1_700_000_000_000) for i, (t, k, v) in enumerate(records)
    ]


def _no_state(_p: int, _k: bytes) -> None:
    return None


def test_bad_records_become_dead_letters_with_reason_and_raw_bytes() -> None:
    raw = b"\xff\xfe"
    msgs = _msgs(
        [
            ("transactions", b"c1", raw),
            ("transactions", b"c1", b"[1]"),
            txn("t1", "c1", "A", 3, "deposit", "10", currency="XYZ"),
            ("transactions", b"other", txn("t2", "c1", "A", 3, "deposit", "10")[2]),
        ]
    )
    res = BatchProcessor(RULES, redactor=Redactor(fields=())).process(msgs, _no_state)
    dead = [orjson.loads(o.value) for o in res.outputs if o.topic == "dead-letters"]
    assert [d["offset"] for d in dead] == [0, 1, 2, 3]
    assert base64.b64decode(dead[0]["value"]) == raw
    assert "UTF-8" in dead[0]["error"]
    # by default personal data is redacted: bytes that cannot be searched are withheld
    redacted = BatchProcessor(RULES).process(msgs, _no_state)
    first = orjson.loads(redacted.outputs[0].value)
    assert first["value"] is None and first["value_withheld"] is True
    assert first["value_sha256"] == hashlib.sha256(raw).hexdigest()
    assert dead[2]["error"].startswith("$.currency")
    assert "key" in dead[3]["error"]
    assert res.counts == {("transactions", "dead_letter"): 4}
    assert res.dead_letters[("transactions", "invalid_utf8")] == 1
    assert res.states == [] and res.decisions == []


def test_duplicates_are_counted_and_emit_nothing() -> None:
    b = balance("b1", "c1", "A", 2, "700000.00")
    res = BatchProcessor(RULES).process(_msgs([b, b]), _no_state)
    assert res.counts == {("balances", "applied"): 1, ("balances", "duplicate"): 1}
    assert [d.topic for d in res.decisions] == ["tier-changes"]  # initial affluent, once
    assert len(res.states) == 1 and len(res.profiles) == 1


def test_state_is_loaded_once_per_customer_and_written_once() -> None:
    loads: list[bytes] = []

    def load(_p: int, k: bytes) -> None:
        loads.append(k)
        return None

    recs = [balance(f"b{i}", "c1", "A", 2 + i, f"{100000 * (i + 1)}.00") for i in range(5)]
    res = BatchProcessor(RULES).process(_msgs(recs), load)
    assert loads == [b"c1"]
    assert len(res.states) == 1
    assert res.profiles[b"c1"]["aum_cny"] == "500000.00"


def test_state_from_a_previous_batch_is_continued() -> None:
    proc = BatchProcessor(RULES)
    first = proc.process(_msgs([balance("b1", "c1", "A", 2, "600000.00")]), _no_state)
    stored = {first.states[0][1]: first.states[0][2]}
    second = proc.process(
        _msgs([balance("b2", "c1", "A", 3, "1200000.00")]), lambda p, k: stored.get(k)
    )
    [change] = second.decisions[:1]
    assert (change.from_tier, change.to_tier) == ("affluent", "hnw")  # type: ignore[union-attr]


def test_guard_stops_only_when_the_window_is_full_and_mostly_bad() -> None:
    g = BadInputGuard(window=10, max_share=0.5)
    for _ in range(9):
        g.record("transactions", 0, True)  # window not full yet
    g.record("transactions", 1, True)  # other partition, own window
    with pytest.raises(TooMuchBadInput, match=r"transactions\[0\]"):
        g.record("transactions", 0, True)


def test_guard_tolerates_half_bad() -> None:
    g = BadInputGuard(window=10, max_share=0.5)
    for i in range(100):
        g.record("balances", 0, i % 2 == 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(INPUT_TOPICS), st.integers(0, 3), st.integers(0, 10**6)),
        max_size=40,
    )
)
def test_batch_merge_equals_the_aligner_with_every_input_caught_up(
    recs: list[tuple[str, int, int]],
) -> None:
    decoded = []
    for i, (topic, partition, ts) in enumerate(recs):
        msg = RawMessage(topic, partition, i, b"k", b"")
        decoded.append(Decoded(msg, None, None)._replace(event=_FakeTs(ts)))  # type: ignore[arg-type]
    merged = list(merge_by_event_time(decoded))
    a: InputAligner[Decoded] = InputAligner(INPUT_TOPICS, lambda d: d.ts)
    a.add((d.msg.topic, d.msg.partition, d) for d in decoded)
    released = a.release(lambda t, p: True, 0)
    # per partition (the unit of ordering) the two orders are identical
    for p in range(4):
        assert [d.msg.offset for d in merged if d.msg.partition == p] == [
            d.msg.offset for d in released if d.msg.partition == p
        ]


class _FakeTs:
    def __init__(self, ts: int) -> None:
        self.ts = ts


def test_profile_consent_record_decodes() -> None:
    # guards the helpers used above against drifting from the contract
    res = BatchProcessor(RULES).process(_msgs([profile("p1", "c1", 1)]), _no_state)
    assert res.counts == {("customer-profiles", "applied"): 1}


# ------------------------------------------------------------------ rules versions


def _tick(partition: int, ts_ms: int) -> RawMessage:
    from schemas.timefmt import format_ts_utc

    value = orjson.dumps(
        {
            "event_id": f"tick-{partition}-{ts_ms}",
            "partition": partition,
            "ts": format_ts_utc(ts_ms),
        }
    )
    return RawMessage("ticks", partition, 0, None, value)


def test_a_new_version_wakes_every_customer_within_the_tick_budget() -> None:
    """set_timeline: customers already indexed are made due at the switch when their
    partition's next tick comes; a tick fires at most ``tick_budget`` of them and
    reports the rest as a backlog; the later ticks fire them all, once."""
    from datetime import datetime

    from state.customer import CustomerState
    from state.decisions import TierChange
    from state.timeline import RulesTimeline
    from tests.state.test_triggers import _rules

    base = load_rules()
    raised = _rules('version = "raised"\n[tiers]\naffluent = "700000"\n')
    proc = BatchProcessor(base, tick_budget=4)
    store: dict[bytes, bytes] = {}

    def run(msgs: list[RawMessage]) -> object:
        res = proc.process(msgs, lambda _p, k: store.get(k))
        for _p, k, v in res.states:
            store[k] = v
        return res

    def scan(p: int) -> list[tuple[bytes, bytes]]:
        return sorted(store.items())

    balances = [  # ten customers on day 1: six at 600k (to move), four at 650k (stay)
        RawMessage(
            "balances",
            0,
            i,
            f"c{i}".encode(),
            balance(f"b{i}", f"c{i}", f"a{i}", 1, "600000.00" if i < 6 else "650000.00")[2],
        )
        for i in range(10)
    ]
    run(balances)
    first = datetime.fromisoformat("2026-03-02T00:00:00+08:00")
    t0 = int(first.timestamp() * 1000)
    res = proc.apply_ordered([proc.decode(_tick(0, t0))], lambda _p, k: store.get(k), scan)
    assert res.decisions == [] and proc.due.has(0)  # indexed, nothing due
    switch = t0 + 3_600_000
    assert proc.set_timeline(RulesTimeline(base, [(switch, raised)])) == [switch]
    moved: list[TierChange] = []
    for n in range(1, 6):
        res = proc.apply_ordered(
            [proc.decode(_tick(0, switch + n * 1000))], lambda _p, k: store.get(k), scan
        )
        for _p, k, v in res.states:
            store[k] = v
        moved += [d for d in res.decisions if isinstance(d, TierChange)]
        fired = res.counts.get(("ticks", "timers_fired"), 0)
        assert fired <= 4
        assert (0 in res.due_backlog) == (n < 3), n  # 10 customers, 4 per tick
    assert sorted(d.customer_id for d in moved) == [f"c{i}" for i in range(6)]
    assert {(d.ts, d.cause_event_id, d.rules_version) for d in moved} == {
        (switch, "rules:raised", "raised")
    }
    assert all(CustomerState.from_bytes(v).timer_mark > switch for v in store.values())


@pytest.mark.parametrize("timeline_first", [False, True])
def test_a_restarted_worker_re_tiers_stored_customers_with_no_new_events(
    timeline_first: bool,
) -> None:
    """A worker that took a partition over (a fresh processor, states in the store)
    re-tiers every stored customer between the old and the new floor at the switch,
    though none of them has a new event -- also when another customer's event comes
    before the partition's first tick (it must not pass for the partition's build, as
    it once did: the stored customers were then never indexed), and whether the new
    version arrives before or after that event."""
    from datetime import datetime

    from state.decisions import TierChange
    from state.timeline import RulesTimeline
    from tests.state.test_triggers import _rules

    base = load_rules()
    raised = _rules('version = "raised"\n[tiers]\naffluent = "700000"\n')
    store: dict[bytes, bytes] = {}
    amounts = ["600000.00", "650000.00", "800000.00", "300000.00", "620000.00"]
    first = BatchProcessor(base)
    res = first.process(
        [
            RawMessage("balances", 0, i, f"c{i}".encode(), balance(f"b{i}", f"c{i}", "a", 1, a)[2])
            for i, a in enumerate(amounts)
        ],
        _no_state,
    )
    store.update((k, v) for _p, k, v in res.states)

    proc = BatchProcessor(base)  # the partition's new owner
    t0 = int(datetime.fromisoformat("2026-03-02T00:00:00+08:00").timestamp() * 1000)
    switch = t0 + 3_600_000

    def load(_p: int, k: bytes) -> bytes | None:
        return store.get(k)

    def scan(_p: int) -> list[tuple[bytes, bytes]]:
        return sorted(store.items())

    def apply(msgs: list[RawMessage]) -> list[TierChange]:
        out = proc.apply_ordered([proc.decode(m) for m in msgs], load, scan)
        store.update((k, v) for _p, k, v in out.states)
        return [d for d in out.decisions if isinstance(d, TierChange)]

    if timeline_first:
        proc.set_timeline(RulesTimeline(base, [(switch, raised)]))
    newcomer = balance("n1", "new", "a", 2, "2000000.00")
    assert [
        d.cause_event_id for d in apply([RawMessage("balances", 0, 9, b"new", newcomer[2])])
    ] == ["n1"]
    if not timeline_first:
        proc.set_timeline(RulesTimeline(base, [(switch, raised)]))
    moved = apply([_tick(0, switch + 1000)])
    assert sorted((d.customer_id, d.from_tier, d.to_tier) for d in moved) == [
        ("c0", "affluent", "mass"),
        ("c4", "affluent", "mass"),
    ]
    assert {(d.ts, d.cause_event_id, d.rules_version) for d in moved} == {
        (switch, "rules:raised", "raised")
    }
    assert apply([_tick(0, switch + 2000)]) == []  # once
