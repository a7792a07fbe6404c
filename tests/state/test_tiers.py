"""Tier thresholds, hysteresis and the average-daily-AUM basis."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.customer import CustomerState
from state.decisions import TierChange
from state.money import CTX
from state.tiers import basis_fen, next_tier, tier_index
from tests.state.helpers import RULES, all_kinds, at, bal, rules_with, run

FEN = 100


@pytest.mark.parametrize(
    ("cny", "tier"),
    [
        (0, "mass"),
        (499_999.99, "mass"),
        (500_000, "affluent"),
        (999_999.99, "affluent"),
        (1_000_000, "hnw"),
        (5_999_999.99, "hnw"),
        (6_000_000, "private"),
        (60_000_000, "private"),
    ],
)
def test_tier_floors(cny: float, tier: str) -> None:
    from state.decisions import TIERS

    assert TIERS[tier_index(round(cny * FEN), RULES)] == tier


def test_first_tier_is_initial_with_null_from_tier() -> None:
    _, outs = run([bal(at(0), "750000")])
    tc = [d for d in outs[0].decisions if isinstance(d, TierChange)]
    assert len(tc) == 1
    assert tc[0].from_tier is None and tc[0].to_tier == "affluent"
    assert tc[0].direction == "initial"
    assert tc[0].rules_version == RULES.version
    assert tc[0].reason["aum_cny"] == "750000.00"
    assert tc[0].reason["floor_cny"] == "500000.00"
    assert tc[0].to_record()["from_tier"] is None


def test_upgrade_is_immediate_and_can_skip_tiers() -> None:
    _, outs = run([bal(at(0), "100"), bal(at(1), "1000000")])
    tc = outs[1].decisions[0]
    assert isinstance(tc, TierChange)
    assert (tc.from_tier, tc.to_tier, tc.direction) == ("mass", "hnw", "upgrade")


def test_dip_inside_the_band_keeps_the_tier() -> None:
    # affluent floor 500k, band 10%: anything >= 450k keeps affluent
    st, outs = run([bal(at(0), "600000"), bal(at(1), "450000"), bal(at(2), "470000")])
    assert st.tier == "affluent"
    assert all_kinds(outs[1:]) == []


def test_falling_below_the_band_downgrades_to_the_tier_the_basis_is_in() -> None:
    st, outs = run([bal(at(0), "600000"), bal(at(1), "449999.99")])
    tc = outs[1].decisions[0]
    assert isinstance(tc, TierChange)
    assert (tc.from_tier, tc.to_tier, tc.direction) == ("affluent", "mass", "downgrade")
    assert tc.reason["threshold_cny"] == "450000.00"
    assert st.tier == "mass"


def test_downgrade_from_private_lands_in_the_basis_tier_not_one_below() -> None:
    # private floor 6M: 5.4M is exactly 6M x 0.9 (inside the band), 700k is far below
    st, outs = run([bal(at(0), "7000000"), bal(at(1), "5400000"), bal(at(2), "700000")])
    assert st.tier == "affluent"
    tcs = [d for o in outs for d in o.decisions if isinstance(d, TierChange)]
    assert [(t.from_tier, t.to_tier) for t in tcs] == [(None, "private"), ("private", "affluent")]


def test_rising_back_above_floor_after_downgrade_upgrades_again() -> None:
    _st, outs = run([bal(at(0), "1200000"), bal(at(1), "800000"), bal(at(2), "1000000")])
    assert [k for k in all_kinds(outs) if k.startswith("tier:")] == [
        "tier:hnw",
        "tier:affluent",
        "tier:hnw",
    ]


def test_next_tier_pure_function() -> None:
    assert next_tier(None, 0, RULES) == "mass"
    assert next_tier("hnw", 90_000_000, RULES) is None  # exactly at floor x 0.9: stay
    assert next_tier("hnw", 89_999_999, RULES) == "affluent"
    assert next_tier("mass", 0, RULES) is None


def test_avg_daily_basis_smooths_a_one_day_spike(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = rules_with(tmp_path, '[tiers]\nbasis = "avg_daily"\navg_days = 10\n')
    # 10 days at 400k, then a spike to 1.5M on day 10: average over days 1..10 is
    # (9 x 400k + 1.5M) / 10 = 510k -> affluent, not hnw
    events = [bal(at(0), "400000")]
    events += [bal(at(d), "400000", event_id=f"b{d}") for d in range(1, 10)]
    events.append(bal(at(10), "1500000"))
    st, outs = run(events, rules=rules)
    assert st.tier == "affluent"
    tc = outs[-1].decisions[0]
    assert isinstance(tc, TierChange)
    assert tc.reason["basis"] == "avg_daily"
    assert tc.reason["basis_cny"] == "510000.00"
    assert tc.reason["aum_cny"] == "1500000.00"


def test_avg_daily_basis_carries_levels_forward_over_quiet_days(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = rules_with(tmp_path, '[tiers]\nbasis = "avg_daily"\navg_days = 4\n')
    # 2M on day 0, nothing on days 1-2, 0 on day 3: days 0..3 = 2M, 2M, 2M, 0 -> 1.5M
    st, outs = run([bal(at(0), "2000000"), bal(at(3), "0")], rules=rules)
    assert st.tier == "hnw"
    assert all_kinds(outs[1:]) == ["aum_drop"]  # no tier change: 1.5M is still hnw


def _reference_avg_daily(samples: dict[int, int], today: int, avg_days: int) -> Decimal | None:
    """The average-daily basis day by day, as documented (the v3 code's loop): each of
    the last ``avg_days`` days counts with the last close set on or before it; days
    before the first known level do not count."""
    start = today - avg_days + 1
    total = counted = 0
    level = None
    for d in sorted(samples):
        if d < start:
            level = samples[d]
    for d in range(start, today + 1):
        if d in samples:
            level = samples[d]
        if level is not None:
            total += level
            counted += 1
    return CTX.divide(Decimal(total), Decimal(counted)) if counted else None


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.integers(0, 60), st.integers(0, 10**12), max_size=25),
    st.integers(0, 70),
    st.integers(1, 40),
)
def test_avg_daily_basis_equals_the_day_by_day_reference(
    closes: dict[int, int], extra: int, avg_days: int
) -> None:
    state = CustomerState("c1")
    state.day = max(closes, default=0) + extra
    state.aum_fen = 123
    for d in sorted(closes):
        state.aum_samples += (d, closes[d] + 7, closes[d])  # high differs: never read
    rules = replace(RULES, tier_basis="avg_daily", tier_avg_days=avg_days)
    want = _reference_avg_daily(closes, state.day, avg_days)
    assert basis_fen(state, rules) == (want if want is not None else 123)
