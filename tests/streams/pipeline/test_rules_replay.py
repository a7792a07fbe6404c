"""Replay = live with a history of rules versions, byte for byte.

A live worker learns the versions while it runs (the rules gate hands the pipeline a
new timeline at some batch boundary before it decides anything stamped at or after
the version's ``effective_from``: streams/worker/rules_gate.py), decides in batches of
whatever size the broker gives, and fires at most ``tick_budget`` customers per tick.
A replay of the same records knows the whole history from the start and decides in
one go. Both must write the same records: every decision, dead letter and audit
record, per customer in the same order, with the same bytes (ids derived from the
cause and the version), and leave every customer in the same tier.

The input is the simulator's bank (months of history, bad records, duplicates, late
deliveries, the clock's ticks), the versions raise a floor with a grace period, then
move the bands and add a month-end review: rules that make time matter. The budget is
the same in the live run and the replays: with a different one, a timer other than a
tier evaluation (a birthday greeting, a dormancy offer) may be fired by a later tick,
and its ``cause_event_id`` names the tick that fired it (its ``event_id`` and content
do not change; docs/rules.md, "Relationship care").
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from itertools import islice

import pytest

from schemas.events import TOPIC_DEAD_LETTERS
from state.customer import CustomerState
from state.rules import load_rules
from state.timeline import RulesTimeline
from streams.pipeline.bad_input import BadInputGuard
from streams.pipeline.processor import (
    BatchProcessor,
    Decoded,
    RawMessage,
    merge_by_event_time,
)
from streams.tools.backtest import kafka_partition
from streams.tools.simulator import DAY_MS, SimConfig, Simulator
from tests.state.test_triggers import _rules

PARTITIONS = 4
V1 = 'version = "v1-floor"\n[tiers]\naffluent = "700000"\ndowngrade_grace_days = 5\n'
V2 = (
    'version = "v2-bands"\n[tiers]\naffluent = "600000"\nhnw = "1500000"\n'
    'downgrade_band = "0.05"\nreview = "month"\n'
)

Outputs = dict[bytes, list[tuple[str, bytes]]]


def _messages(seed: int, n: int) -> list[RawMessage]:
    cfg = SimConfig(
        customers=120,
        seed=seed,
        bad_share=0.01,
        tick_partitions=PARTITIONS,
        tick_every_ms=DAY_MS // 2,
        events_per_day=1,
    )
    out: list[RawMessage] = []
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    for rec in islice(Simulator(cfg).records(), n):
        p = rec.partition if rec.partition is not None else kafka_partition(rec.key or b"", 4)
        out.append(RawMessage(rec.topic, p, offsets[(rec.topic, p)], rec.key, rec.value, rec.ts_ms))
        offsets[(rec.topic, p)] += 1
    return out


def _run(
    ordered: Sequence[Decoded],
    start: RulesTimeline,
    full: RulesTimeline,
    rng: random.Random | None,
    tick_budget: int | None,
) -> tuple[Outputs, dict[bytes, str | None]]:
    """Decide ``ordered`` in batches (random sizes with ``rng``, else one batch),
    starting from ``start`` and learning each version of ``full`` at a batch boundary
    before anything at or after its time (sometimes earlier: published ahead)."""
    proc = BatchProcessor(start, guard=BadInputGuard(max_share=1.0), tick_budget=tick_budget)
    store: dict[bytes, bytes] = {}
    owner: dict[bytes, int] = {}
    out: Outputs = defaultdict(list)
    pending = [v.effective_from for v in full.versions if v not in start.versions]
    i = 0
    while i < len(ordered):
        size = rng.randint(1, 400) if rng is not None else len(ordered)
        batch = ordered[i : i + size]
        i += len(batch)
        newest = max(d.ts for d in batch)
        early = rng is not None and rng.random() < 0.3
        known = [t for t in pending if t <= newest or (early and t == pending[0])]
        if known:
            pending = pending[len(known) :]
            learnt = [(v.effective_from, v.rules) for v in full.versions if v.effective_from
                      not in pending]  # fmt: skip
            proc.set_timeline(RulesTimeline(full.base, learnt))
        res = proc.apply_ordered(batch, lambda _p, k: store.get(k), lambda p: [
            (k, v) for k, v in store.items() if owner[k] == p
        ])  # fmt: skip
        for p, key, value in res.states:
            store[key], owner[key] = value, p
        for _p, key in res.tombstones:
            store.pop(key, None)
        for o in res.outputs:
            who = o.key if o.topic != TOPIC_DEAD_LETTERS else b"dead-letters"
            out[who or b""].append((o.topic, o.value))
    tiers = {k: CustomerState.from_bytes(v).tier for k, v in store.items()}
    return dict(out), tiers


@pytest.mark.parametrize(("seed", "budget"), [(5, None), (17, None), (5, 3)])
def test_live_with_versions_learnt_on_the_way_equals_the_replay_byte_for_byte(
    seed: int, budget: int | None
) -> None:
    msgs = _messages(seed, 12_000)
    probe = BatchProcessor(load_rules(), guard=BadInputGuard(max_share=1.0))
    ordered = list(merge_by_event_time(probe.decode(m) for m in msgs))
    times = sorted(d.ts for d in ordered if d.event is not None)
    t1, t2 = times[len(times) // 3], times[2 * len(times) // 3]
    base = load_rules()
    full = RulesTimeline(base, [(t1, _rules(V1)), (t2, _rules(V2))])

    replay, replay_tiers = _run(ordered, full, full, None, budget)
    live, live_tiers = _run(ordered, RulesTimeline(base, []), full, random.Random(seed), budget)
    again, _ = _run(ordered, full, full, random.Random(seed + 1), budget)

    assert live.keys() == replay.keys()
    for key in replay:
        assert live[key] == replay[key], key
    assert again == replay
    assert live_tiers == replay_tiers
    # the history mattered: decisions under each version, re-tiers by both switches
    body = b"".join(v for recs in replay.values() for _t, v in recs)
    for version in (base.version, "v1-floor", "v2-bands"):
        assert f'"rules_version":"{version}"'.encode() in body
    # v1's grace period holds its downgrades (released later, cause tier:<instant>);
    # v2 lowers the affluent floor: upgrades at its switch
    assert b'"cause_event_id":"tier:' in body
    assert b'"cause_event_id":"rules:v2-bands"' in body
