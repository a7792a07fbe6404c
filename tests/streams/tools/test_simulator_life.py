"""Months of a bank's life in the simulator, and its clock (streams/tools/simulator.py).

What must hold for the demo to show what the rules do without faking it: sleepers
really stop transacting (dormancy), churners really stop part-way (churn risk), cash
users really bank at ATMs and branches, questionnaires really are of all ages
(expiry), activity really spreads (RFM); switching these on never changes who the
customers are; and the ticks come one per partition, in event-time order with the
events, never faulted. Plus the pace of ``--speed`` and the ticks in replay files.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.decoder import DecodeError, Decoder
from schemas.events import TOPIC_TICKS
from streams.cli import main
from streams.tools.loader import SimPace, read_replay_file, to_jsonl_line
from streams.tools.simulator import (
    DAY_MS,
    DEFAULT_START_MS,
    HOUR_MS,
    LABEL_OK,
    LABEL_TICK,
    SimConfig,
    SimRecord,
    Simulator,
    demo_config,
    is_bad,
)

START = DEFAULT_START_MS
#: bank postings: not customer activity (the core's windows.exclude_types)
POSTINGS = {"interest", "fee"}


def quiet_faults(**kw: Any) -> SimConfig:
    return SimConfig(duplicate_share=0.0, late_share=0.0, **kw)


@cache
def months(**kw: Any) -> tuple[tuple[str, SimRecord], ...]:
    """About 60 simulated days of a 300-customer bank with 1 transaction per customer
    and day (the life options under test on top)."""
    cfg = quiet_faults(customers=300, seed=17, events_per_day=300, **kw)
    out = []
    for label, rec in Simulator(cfg).labelled():
        if rec.ts_ms > START + 60 * DAY_MS:
            break
        out.append((label, rec))
    return tuple(out)


def evs(recs: tuple[tuple[str, SimRecord], ...], topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for label, r in recs if not is_bad(label) and r.topic == topic]


def activity_days(recs: tuple[tuple[str, SimRecord], ...]) -> dict[str, list[int]]:
    """Customer id -> the days (since START, may be negative) of their counted
    transactions (not bank postings)."""
    days: dict[str, list[int]] = defaultdict(list)
    for label, r in recs:
        if r.topic == "transactions" and label == LABEL_OK:
            ev = orjson.loads(r.value)
            if ev["type"] not in POSTINGS:
                days[ev["customer_id"]].append((r.ts_ms - START) // DAY_MS)
    return days


def test_life_options_do_not_change_who_the_customers_are() -> None:
    plain = months()
    lively = months(
        sleeper_share=0.1,
        churn_share=0.1,
        cash_share=0.1,
        activity_spread=1.2,
        assessment_age_days=395,
    )

    # Same profiles (segment, consent, birth date) and the same opening balances (event
    # ids differ: sleepers' last transactions come in between).
    def who(recs: tuple[tuple[str, SimRecord], ...]) -> list[dict[str, Any]]:
        return [{**e, "event_id": ""} for e in evs(recs, "customer-profiles")[:300]]

    assert who(plain) == who(lively)
    opening = [
        (e["account_id"], e["balance"])
        for e in evs(plain, "balances")
        if e["ts"].startswith("2026-01-01T00:0")
    ]
    lively_opening = {
        (e["account_id"], e["balance"])
        for e in evs(lively, "balances")
        if e["ts"].startswith("2026-01-01T00:0")
    }
    assert opening and set(opening) == lively_opening


def test_sleepers_last_transacted_weeks_before_go_live_and_then_never() -> None:
    recs = months(sleeper_share=0.2)
    days = activity_days(recs)
    sleepers = {c for c, ds in days.items() if min(ds) < 0}
    assert 0.14 * 300 < len(sleepers) < 0.26 * 300
    for c in sleepers:
        # exactly one, 20-85 days before go-live, and nothing counted after it
        assert len(days[c]) == 1 and -86 <= days[c][0] <= -20, (c, days[c])
    # Their accounts are still there: weekly snapshots go on.
    snapped = {e["customer_id"] for e in evs(recs, "balances") if e["ts"] >= "2026-02"}
    assert sleepers <= snapped
    # Everybody else keeps transacting (salaries alone come monthly).
    awake = [c for c in days if c not in sleepers]
    assert sum(max(days[c]) >= 50 for c in awake) > 0.9 * len(awake)


def test_churners_stop_between_day_5_and_40_and_others_do_not() -> None:
    def stopped(recs: tuple[tuple[str, SimRecord], ...]) -> int:
        return sum(1 for ds in activity_days(recs).values() if max(ds) <= 41)

    churning = stopped(months(churn_share=0.25))
    assert 0.18 * 300 < churning < 0.32 * 300, churning
    assert stopped(months()) <= 3
    # A churner transacted after go-live before stopping (P(alive) has a history).
    lasts = [max(ds) for ds in activity_days(months(churn_share=0.25)).values() if max(ds) <= 41]
    assert min(lasts) >= 0


def test_cash_users_bank_at_atms_and_branches() -> None:
    def offline_share(recs: tuple[tuple[str, SimRecord], ...]) -> float:
        txns = [e for e in evs(recs, "transactions") if e["type"] not in POSTINGS]
        offline = sum(e["channel"] in ("atm", "branch") for e in txns)
        return offline / len(txns)

    per_customer: dict[str, Counter[bool]] = defaultdict(Counter)
    for e in evs(months(cash_share=1.0), "transactions"):
        if e["type"] not in POSTINGS:
            per_customer[e["customer_id"]][e["channel"] in ("atm", "branch")] += 1
    mostly = sum(c[True] > c[False] for c in per_customer.values() if sum(c.values()) >= 5)
    assert mostly > 0.6 * len(per_customer)
    assert offline_share(months(cash_share=1.0)) > offline_share(months()) + 0.3


def test_onboarding_assessments_were_filled_in_over_the_months_before() -> None:
    age_days = [
        (START - r.ts_ms) / DAY_MS
        for label, r in months(assessment_age_days=395)
        if r.topic == "risk-assessments" and r.ts_ms <= START + 200
    ]
    assert len(age_days) == 300
    assert max(age_days) <= 395 and min(age_days) >= -0.01
    # spread over the whole range: some expire within weeks, some already have
    expired = sum(a > 365 for a in age_days)
    soon = sum(335 < a <= 365 for a in age_days)
    assert 5 <= expired <= 45 and 5 <= soon <= 45, (expired, soon)
    assert all(
        (START - r.ts_ms) < 200
        for label, r in months()
        if r.topic == "risk-assessments" and r.ts_ms <= START + 200
    )
    # With them, onboarding also brings every customer's last transaction, 1-7 days
    # before go-live: nobody looks silent since their questionnaire (dormancy).
    before = {
        c: [d for d in ds if d < 0]
        for c, ds in activity_days(months(assessment_age_days=395)).items()
    }
    assert len(before) == 300 and all(len(ds) == 1 and -7 <= ds[0] < 0 for ds in before.values())
    assert not any(d < 0 for ds in activity_days(months()).values() for d in ds)


def test_activity_spread_makes_some_customers_far_busier_than_others() -> None:
    def cv(recs: tuple[tuple[str, SimRecord], ...]) -> float:
        counts = [len(ds) for ds in activity_days(recs).values()]
        return statistics.pstdev(counts) / statistics.mean(counts)

    assert cv(months(activity_spread=1.2)) > 2 * cv(months())


# --- the clock ----------------------------------------------------------------------------


def test_ticks_one_per_partition_in_event_time_order_and_never_faulted() -> None:
    cfg = SimConfig(
        customers=100,
        seed=5,
        events_per_day=200,
        tick_partitions=3,
        tick_every_ms=2 * HOUR_MS,
        duplicate_share=0.05,
        late_share=0.05,
        bad_share=0.05,
    )
    sim = Simulator(cfg)
    recs = list(sim.labelled(20_000))
    decoder = Decoder()
    ticks = [(i, r) for i, (label, r) in enumerate(recs) if label == LABEL_TICK]
    assert ticks and all(r.topic == TOPIC_TICKS and r.key is None for _, r in ticks)
    assert sim.stats[LABEL_TICK] == len(ticks)
    by_time: dict[int, list[int]] = defaultdict(list)
    for _, r in ticks:
        tick = decoder.decode_tick(r.value)
        assert not isinstance(tick, DecodeError), tick
        assert tick.partition == r.partition and tick.ts == r.ts_ms
        by_time[r.ts_ms].append(tick.partition)
    times = sorted(by_time)
    assert all(sorted(ps) == [0, 1, 2] for ps in by_time.values())
    assert times[0] == START + 2 * HOUR_MS
    assert all(b - a == 2 * HOUR_MS for a, b in itertools.pairwise(times))
    # Every good record delivered in order sits between the ticks around its time.
    tick_at = {i: r.ts_ms for i, r in ticks}
    last_tick = 0
    for i, (label, r) in enumerate(recs):
        if i in tick_at:
            last_tick = tick_at[i]
        elif label == LABEL_OK and r.ts_ms >= START:
            assert r.ts_ms > last_tick, (i, r)
    for i, r in ticks:  # nothing after the tick (but late deliveries) is at or before it
        later = [x for label, x in recs[i + 1 : i + 200] if label == LABEL_OK]
        assert all(x.ts_ms > r.ts_ms for x in later)


def test_no_ticks_unless_asked() -> None:
    assert not any(
        label == LABEL_TICK for label, _ in Simulator(SimConfig(customers=50)).labelled(3000)
    )


def test_sim_pace_holds_event_time_to_days_per_minute() -> None:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    pace = SimPace(1.0, clock=lambda: now[0], sleep=sleep)  # one simulated day a minute
    pace.wait_for(START)
    pace.wait_for(START - 5 * DAY_MS)  # back-dated: never waits
    assert now[0] == 0.0
    pace.wait_for(START + DAY_MS // 2)
    assert now[0] == pytest.approx(30.0)
    pace.wait_for(START + DAY_MS // 4)  # late: never waits, never moves the pace back
    pace.wait_for(START + DAY_MS)
    assert now[0] == pytest.approx(60.0)
    with pytest.raises(ValueError):
        SimPace(0)


# --- the demo's bank, the CLI, replay ---------------------------------------------------------


def test_demo_config_is_the_life_of_a_bank() -> None:
    cfg = demo_config(2000, tick_partitions=8)
    assert cfg.customers == 2000 and cfg.events_per_day == 600 and cfg.bad_share == 0.01
    assert cfg.tick_partitions == 8 and cfg.tick_every_ms == HOUR_MS
    assert cfg.sleeper_share > 0 and cfg.churn_share > 0 and cfg.cash_share > 0
    assert cfg.activity_spread > 0 and cfg.assessment_age_days > 365


def test_cli_demo_dry_run_writes_ticks_that_replay_to_their_partition(
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIERSTREAM_PARTITIONS", "4")
    assert main(["simulate", "--demo", "--customers", "100", "--events", "6000", "--dry-run"]) == 0
    out = capsysbinary.readouterr().out
    path = tmp_path / "demo.jsonl"
    path.write_bytes(out)
    lines = [orjson.loads(line) for line in out.splitlines()]
    ticks = [x for x in lines if x.get("topic") == TOPIC_TICKS]
    assert {t["partition"] for t in ticks} == {0, 1, 2, 3}
    assessed = [x["ts"] for x in lines if x.get("topic") == "risk-assessments" and "ts" in x]
    assert min(assessed) < "2025-06"  # questionnaires from the months before go-live
    records = list(read_replay_file(str(path)))
    replayed = [r for r in records if r.topic == TOPIC_TICKS]
    assert len(replayed) == len(ticks)
    assert all(
        r.key is None and r.partition == orjson.loads(r.value)["partition"] for r in replayed
    )
    # a tick line round-trips through the replay file format
    rec = replayed[0]
    assert orjson.loads(to_jsonl_line(LABEL_TICK, rec))["partition"] == rec.partition


def test_replay_skips_a_tick_line_without_its_partition(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"topic":"ticks","event_id":"tick-x","ts":"2026-01-01T00:00:00Z"}\n')
    assert list(read_replay_file(str(path))) == []


def test_life_options_are_validated() -> None:
    for bad in (
        {"sleeper_share": 1.5},
        {"sleeper_share": 0.6, "churn_share": 0.6},
        {"activity_spread": -1.0},
        {"assessment_age_days": -1},
        {"tick_partitions": -1},
        {"tick_every_ms": 10},
    ):
        with pytest.raises(ValueError):
            SimConfig(**bad)
