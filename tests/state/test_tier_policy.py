"""Tier policies and time (state/tier_policy.py, docs/rules.md "Tier policies and
time"): the minimum stay, the downgrade grace period, the review cadence, and the
average-daily basis moving with time alone -- each held downgrade is released by a
tick at the exact instant, with the same record whatever the tick spacing, and
``next_due_ms`` is never late."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import InputEvent
from schemas.timefmt import format_ts_utc
from state.core import apply, fire_timers
from state.customer import CustomerState
from state.decisions import Decision, Offer, TierChange
from state.rules import Rules
from state.tier_policy import is_review_instant, next_review_ms, tier_due, verdict
from state.tiers import evaluate, next_tier
from state.triggers import next_due_ms
from tests.state.helpers import DAY, HOUR, RULES, T0, at, bal, prof, run
from tests.state.test_triggers import _rules

MIN_DAYS = _rules("[tiers]\nmin_days_in_tier = 20\n")
GRACE = _rules("[tiers]\ndowngrade_grace_days = 10\n")
MONTHLY = _rules('[tiers]\nreview = "month"\n')
QUARTERLY = _rules('[tiers]\nreview = "quarter"\n')
AVG = _rules('[tiers]\nbasis = "avg_daily"\navg_days = 30\n')


def tiers(decisions: list[Decision] | tuple[Decision, ...]) -> list[tuple[str, int, str]]:
    return [(d.to_tier, d.ts, d.cause_event_id) for d in decisions if isinstance(d, TierChange)]


def tick(state: CustomerState, ts: int, rules: Rules) -> tuple[Decision, ...]:
    return fire_timers(state, ts, f"tick-0-{ts}", rules).decisions


def test_the_defaults_switch_every_policy_off() -> None:
    assert (RULES.tier_min_days, RULES.tier_grace_days, RULES.tier_review) == (0, 0, "none")
    assert not RULES.tier_policies
    s, _ = run([bal(at(0), "600000")])
    for basis in (Decimal(0), 44_999_999, 45_000_000, 50_000_000, 100_000_000, 10**10):
        ev = evaluate(s, RULES, basis=basis)
        assert verdict(s, RULES, at(1), ev) == (next_tier(s.tier, basis, RULES), -1)
    assert tier_due(s, RULES, s.timer_mark) is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("min_days_in_tier = -1", "tiers.min_days_in_tier"),
        ("downgrade_grace_days = 1.5", "tiers.downgrade_grace_days"),
        ('review = "weekly"', "tiers.review"),
    ],
)
def test_bad_policy_values_stop_start_up_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        _rules(f"[tiers]\n{text}\n")


# ------------------------------------------------------------------ min_days_in_tier


def test_a_downgrade_waits_for_the_minimum_stay_and_then_happens_without_an_event() -> None:
    s, outs = run([bal(at(0), "600000"), bal(at(5), "100000")], rules=MIN_DAYS)
    assert [d.to_tier for o in outs for d in o.decisions if isinstance(d, TierChange)] == [
        "affluent"
    ]
    due = at(0) + 20 * DAY
    assert next_due_ms(s, MIN_DAYS) == due
    assert tick(s, due - 1, MIN_DAYS) == ()
    fired = tick(s, due + 7 * DAY, MIN_DAYS)  # a late tick: the record says when it was due
    assert tiers(fired) == [("mass", due, f"tier:{format_ts_utc(due)}")]
    change = fired[0]
    assert isinstance(change, TierChange)
    assert change.direction == "downgrade" and change.rules_version == MIN_DAYS.version
    assert change.reason["min_days_in_tier"] == "20" and change.reason["trigger"].startswith(
        "tier:"
    )
    assert s.tier_since == due


def test_an_event_after_the_minimum_stay_downgrades_itself_and_upgrades_never_wait() -> None:
    s, outs = run(
        [bal(at(0), "600000"), bal(at(1), "1200000"), bal(at(2), "100000")], rules=MIN_DAYS
    )
    # the upgrade to hnw went through at once; the drop waits 20 days from entering hnw
    assert [t[0] for o in outs for t in tiers(o.decisions)] == ["affluent", "hnw"]
    o = apply(s, bal(at(21, 13), "100000", event_id="late-enough"), MIN_DAYS)
    # the tick-less catch-up releases it at the exact instant, before the event
    assert tiers(o.decisions) == [("mass", at(1) + 20 * DAY, f"tier:{format_ts_utc(at(21))}")]


# ------------------------------------------------------------------ grace


def test_the_grace_period_counts_from_the_first_evaluation_below_and_restarts_above() -> None:
    s, _ = run([bal(at(0), "600000"), bal(at(5), "100000")], rules=GRACE)
    assert s.tier == "affluent" and s.below_since == at(5)
    assert next_due_ms(s, GRACE) == at(15)
    # back above the threshold (450k) on day 9: the count ends
    o = apply(s, bal(at(9), "460000"), GRACE)
    assert tiers(o.decisions) == [] and s.below_since == -1
    assert tier_due(s, GRACE, s.timer_mark) is None
    # below again on day 11: due 10 days later, not on day 15
    apply(s, bal(at(11), "10"), GRACE)
    assert s.below_since == at(11)
    assert tick(s, at(15), GRACE) == ()
    assert tiers(tick(s, at(30), GRACE)) == [("mass", at(21), f"tier:{format_ts_utc(at(21))}")]
    assert s.below_since == -1


def test_the_grace_period_is_not_kept_without_one() -> None:
    s, _ = run([bal(at(0), "600000"), bal(at(5), "460000")], rules=MIN_DAYS)
    assert s.below_since == -1


# ------------------------------------------------------------------ review


def test_review_instants_are_local_month_and_quarter_starts() -> None:
    feb = T0 + 31 * DAY  # 2026-02-01T00:00+08:00
    assert is_review_instant(MONTHLY, feb) and not is_review_instant(MONTHLY, feb + 1)
    assert not is_review_instant(QUARTERLY, feb)
    assert is_review_instant(QUARTERLY, T0) and is_review_instant(MONTHLY, T0)
    assert next_review_ms(MONTHLY, T0) == feb
    assert next_review_ms(MONTHLY, feb - 1) == feb
    assert next_review_ms(QUARTERLY, T0) == T0 + (31 + 28 + 31) * DAY  # 2026-04-01
    assert next_review_ms(QUARTERLY, T0 + 300 * DAY) == T0 + 365 * DAY  # 2027-01-01


@pytest.mark.parametrize(
    ("rules", "review_day"), [(MONTHLY, 31), (QUARTERLY, 31 + 28 + 31)], ids=["month", "quarter"]
)
def test_downgrades_wait_for_the_review_and_upgrades_do_not(rules: Rules, review_day: int) -> None:
    s, outs = run([bal(at(0), "600000"), bal(at(5), "100000"), bal(at(6), "1300000")], rules=rules)
    assert [t[0] for o in outs for t in tiers(o.decisions)] == ["affluent", "hnw"]
    apply(s, bal(at(8), "100000"), rules)
    assert s.tier == "hnw"
    review = T0 + review_day * DAY
    # the tier's own next instant; the relationship manager's care reviews (service
    # contacts, due without marketing consent since issue 22) may fall due before it
    assert tier_due(s, rules, s.timer_mark) == review
    assert tiers(tick(s, review - 1, rules)) == []
    assert tiers(tick(s, review + HOUR, rules)) == [
        ("mass", review, f"tier:{format_ts_utc(review)}")
    ]


def test_a_basis_back_above_the_threshold_before_the_review_keeps_the_tier() -> None:
    s, _ = run([bal(at(0), "600000"), bal(at(5), "100000"), bal(at(20), "480000")], rules=MONTHLY)
    assert tier_due(s, MONTHLY, s.timer_mark) is None
    assert tick(s, T0 + 40 * DAY, MONTHLY) == ()
    assert s.tier == "affluent"


# ------------------------------------------------------------------ avg_daily by time


def test_an_affluent_customer_whose_aum_fell_to_zero_is_mass_without_a_new_event() -> None:
    """Issue 21: under avg_daily the customer was still affluent 60 days later."""
    s, _ = run([prof(at(0, 8)), bal(at(0), "600000"), bal(at(40), "0")], rules=AVG)
    assert s.tier == "affluent"  # the average still holds 40 days at 600k
    due = next_due_ms(s, AVG)
    assert due is not None and due > s.timer_mark
    fired = tick(s, at(100), AVG)  # 60 days later
    assert [(t[0], t[2].startswith("tier:")) for t in tiers(fired)] == [("mass", True)]
    change = fired[0]
    assert isinstance(change, TierChange) and change.ts == due
    # the first local midnight at which the 30-day average fell below 450,000: on day
    # 40 + k the window holds days 11 + k .. 40 + k, of which 29 - k at 600k (the drop
    # day 40 closes at 0): 600k x (29 - k) / 30 < 450k  <=>  k > 6.5, so day 47
    assert due == T0 + 47 * DAY
    assert Decimal(change.reason["basis_cny"]) < 450_000


def test_an_average_rising_to_a_floor_upgrades_at_that_midnight_with_the_offer() -> None:
    s, outs = run([prof(at(0, 8)), bal(at(0), "300000"), bal(at(10), "900000")], rules=AVG)
    assert [t[0] for o in outs for t in tiers(o.decisions)] == ["mass"]
    fired = tick(s, at(60), AVG)
    assert [t[0] for t in tiers(fired)] == ["affluent"]
    offers = [d for d in fired if isinstance(d, Offer)]
    # no valid risk assessment: the recommendation brings risk_assessment_due along
    assert [o.kind for o in offers] == ["wealth_products", "risk_assessment_due"]
    for o in offers:
        assert (o.ts, o.cause_event_id) == (fired[0].ts, fired[0].cause_event_id)


# ------------------------------------------------------------------ properties

POLICY_RULES = {
    "min_days": MIN_DAYS,
    "grace": GRACE,
    "monthly": MONTHLY,
    "avg": AVG,
    "all_avg": _rules(
        '[tiers]\nbasis = "avg_daily"\navg_days = 9\nmin_days_in_tier = 4\n'
        'downgrade_grace_days = 3\nreview = "month"\n'
    ),
}
HORIZON = 120 * DAY
_TIER_KINDS = {"wealth_products", "relationship_manager", "private_banking_invitation"}
_TIER_KINDS |= {"high_value_downgrade"}


@st.composite
def histories(draw) -> list[InputEvent]:  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, 14))
    times = sorted(draw(st.lists(st.integers(0, HORIZON), min_size=n, max_size=n)))
    out: list[InputEvent] = [prof(T0, consent=draw(st.booleans()), birth_date=None, event_id="p0")]
    for i, t in enumerate(times):
        amount = draw(st.sampled_from(["0", "100000", "460000", "600000", "950000", "1300000"]))
        out.append(bal(T0 + t, amount, event_id=f"b{i}", account=draw(st.sampled_from("ab"))))
    return out


def _replay(events: list[InputEvent], ticks: list[int], rules: Rules) -> list[bytes]:
    state: CustomerState | None = None
    records: list[bytes] = []
    merged = sorted([(e.ts, 1, i) for i, e in enumerate(events)] + [(t, 0, -1) for t in ticks])
    for ts, is_event, i in merged:
        if is_event:
            o = apply(state, events[i], rules)
        elif state is not None:
            due = next_due_ms(state, rules)
            o = fire_timers(state, ts, f"tick-0-{ts}", rules)
            for d in o.decisions:  # never later than the real firing
                assert due is not None and due <= d.ts <= ts
        else:
            continue
        state = o.state
        # what a tier change brings names its cause (the event or the trigger); other
        # timers (dormancy) name the tick that fired them
        records += [
            msgspec.json.encode(d.to_record())
            for d in o.decisions
            if isinstance(d, TierChange) or d.kind in _TIER_KINDS
        ]
    return records


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.sampled_from(sorted(POLICY_RULES)), st.integers(1, 3 * DAY))
def test_the_same_records_whatever_the_tick_spacing(
    events: list[InputEvent], name: str, jitter: int
) -> None:
    rules = POLICY_RULES[name]
    end = T0 + HORIZON + 90 * DAY
    spacings = [
        [*range(T0, end, 6 * HOUR), end],
        [*range(T0 + jitter, end, DAY + jitter), end],
        [end],
    ]
    results = [_replay(events, ticks, rules) for ticks in spacings]
    assert results[0] == results[1] == results[2]
