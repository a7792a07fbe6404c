"""Rules versions over event time (state/timeline.py, docs/rules.md "Versions over
time"): each decision by the version in force at its time, a switch that changes the
tier rules re-tiers every customer at its ``effective_from`` (``rules:<version>``),
customers inside the new band stay, what follows obeys consent and caps, and the
records are the same whichever tick or event brings the switch."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import InputEvent
from state.core import apply, fire_timers
from state.customer import CustomerState
from state.decisions import Alert, Decision, Offer, TierChange
from state.timeline import RulesTimeline
from state.triggers import next_due_ms
from tests.state.helpers import DAY, HOUR, RULES, T0, at, bal, prof, run
from tests.state.test_triggers import _rules

RAISED = _rules('version = "2027.01-raised"\n[tiers]\naffluent = "700000"\n')
LOWERED = _rules('version = "2027.01-lowered"\n[tiers]\naffluent = "400000"\n')
CAPPED = _rules('version = "2027.01-caps"\n[offers.cooldown_days]\nwealth_products = 60\n')
E = at(20, 9)  # the switch: day 20, 09:00 local


def changes(decisions: tuple[Decision, ...] | list[Decision]) -> list[TierChange]:
    return [d for d in decisions if isinstance(d, TierChange)]


def test_at_picks_the_version_in_force_and_switches_lists_them() -> None:
    tl = RulesTimeline(RULES, [(E, RAISED), (E + DAY, CAPPED)])
    assert tl.at(E - 1) is RULES and tl.at(E) is RAISED and tl.at(E + DAY) is CAPPED
    assert tl.at(-(2**62)) is RULES and tl.latest is CAPPED and len(tl) == 3
    assert [v.rules for v in tl.switches(E - 1, E)] == [RAISED]
    assert tl.switches(E, E + DAY - 1) == ()
    assert [v.rules for v in tl.switches(0, E + DAY)] == [RAISED, CAPPED]
    assert tl.next_switch(E - 1) == E and tl.next_switch(E) == E + DAY
    assert tl.next_switch(E + DAY) is None
    # re-tier only where the tier rules change: RAISED yes, CAPPED (caps only) no
    assert [v.retier for v in tl.versions] == [True, True]  # CAPPED goes back to 500k
    assert [v.retier for v in RulesTimeline(RULES, [(E, CAPPED)]).versions] == [False]
    assert tl.versions[0].trigger == "rules:2027.01-raised"
    with pytest.raises(ValueError, match="strictly increasing"):
        RulesTimeline(RULES, [(E, RAISED), (E, CAPPED)])
    with pytest.raises(ValueError, match="takes effect twice"):
        RulesTimeline(RULES, [(E, RAISED), (E + 1, CAPPED), (E + 2, RAISED)])
    assert RulesTimeline(RAISED, [(E, RAISED)]).versions  # the base may come back once


def _customer(balance: str, *, consent: bool = True, cid: str = "c1") -> CustomerState:
    s, _ = run([prof(at(0, 8), consent=consent, customer=cid), bal(at(0), balance, customer=cid)])
    return s


@pytest.mark.parametrize(
    ("balance", "tier_after"),
    [
        ("600000.00", "mass"),  # between the old floor and the new threshold: moves
        ("629999.99", "mass"),
        ("630000.00", "affluent"),  # inside the new band (700k x 0.9): stays
        ("650000.00", "affluent"),
        ("720000.00", "affluent"),  # above the new floor: stays
        ("400000.00", "mass"),  # was mass, stays mass: nothing emitted
    ],
)
def test_raising_a_floor_moves_exactly_the_customers_it_must(balance: str, tier_after: str) -> None:
    tl = RulesTimeline(RULES, [(E, RAISED)])
    s = _customer(balance)
    before = s.tier
    assert next_due_ms(s, tl) == E
    o = fire_timers(s, E + 5 * HOUR, "tick-0-x", tl)
    assert o.status == "fired" and s.timer_mark == E + 5 * HOUR
    got = changes(o.decisions)
    if tier_after == before:
        assert got == []
    else:
        (c,) = got
        assert (c.from_tier, c.to_tier, c.direction) == (before, tier_after, "downgrade")
        assert (c.ts, c.cause_event_id, c.rules_version) == (
            E,
            "rules:2027.01-raised",
            RAISED.version,
        )
        assert c.reason["trigger"] == "rules:2027.01-raised"
    assert s.tier == tier_after
    assert fire_timers(s, E + 6 * HOUR, "tick-0-y", tl).decisions == ()  # once


def test_lowering_a_floor_upgrades_with_the_offer_only_with_consent() -> None:
    tl = RulesTimeline(RULES, [(E, LOWERED)])
    yes, no = _customer("450000", cid="c1"), _customer("450000", consent=False, cid="c2")
    fired_yes = fire_timers(yes, E + HOUR, "tick-0-a", tl).decisions
    fired_no = fire_timers(no, E + HOUR, "tick-0-a", tl).decisions
    assert [(c.to_tier, c.direction) for c in changes(fired_yes)] == [("affluent", "upgrade")]
    assert [(c.to_tier, c.direction) for c in changes(fired_no)] == [("affluent", "upgrade")]
    offers_yes = [d for d in fired_yes if isinstance(d, Offer)]
    assert [o.kind for o in offers_yes][:1] == ["wealth_products"]
    assert all(
        (o.ts, o.cause_event_id, o.rules_version) == (E, "rules:2027.01-lowered", LOWERED.version)
        for o in offers_yes
    )
    assert not [d for d in fired_no if isinstance(d, Offer)]


def test_the_cap_of_an_earlier_offer_still_holds_after_a_switch() -> None:
    tl = RulesTimeline(RULES, [(E, LOWERED)])
    s = _customer("1200000")  # hnw: relationship_manager offer at day 0
    apply(s, bal(at(5), "450000"), tl)  # -> mass (below 900k and 450k)
    apply(s, bal(at(10), "600000"), tl)  # -> affluent again: wealth_products on day 10
    assert s.tier == "affluent"
    apply(s, bal(at(15), "420000"), tl)  # mass again (below 450k)
    fired = fire_timers(s, E + HOUR, "tick", tl).decisions
    assert [c.to_tier for c in changes(fired)] == ["affluent"]  # 420k >= 400k
    # wealth_products went out on day 10: within 30 days, so not again at E (day 20)
    assert "wealth_products" not in [d.kind for d in fired if isinstance(d, Offer)]


def test_a_switch_that_keeps_the_tier_rules_only_moves_the_watermark() -> None:
    tl = RulesTimeline(RULES, [(E, CAPPED)])
    s = _customer("600000")
    assert next_due_ms(s, tl) == E
    o = fire_timers(s, E + HOUR, "tick", tl)
    assert (o.status, o.decisions, s.timer_mark) == ("fired", (), E + HOUR)
    assert next_due_ms(s, tl) != E  # woken once, not again


def test_events_are_decided_by_the_version_at_their_time_and_a_late_one_by_the_old() -> None:
    tl = RulesTimeline(RULES, [(E, RAISED)])
    s = _customer("100000")
    # after the switch (the catch-up fires it first: nothing for a mass customer),
    # 650k is mass under the raised floor (it would be affluent under the old one)
    o = apply(s, bal(at(21), "550000", account="b"), tl)
    assert changes(o.decisions) == [] and s.tier == "mass"
    # a late balance dated before the switch is decided by the version before it
    o = apply(s, bal(at(19), "50000", event_id="late"), tl)
    (c,) = changes(o.decisions)
    assert (c.to_tier, c.rules_version, c.cause_event_id) == ("affluent", RULES.version, "late")


def test_an_event_brings_the_switch_with_the_same_record_as_a_tick() -> None:
    tl = RulesTimeline(RULES, [(E, RAISED)])
    by_tick, by_event = _customer("600000"), _customer("600000")
    via_tick = fire_timers(by_tick, E + HOUR, "tick-0-1", tl).decisions
    via_event = apply(by_event, prof(E + 2 * HOUR, event_id="later"), tl).decisions
    assert via_tick and [d.to_record() for d in via_tick] == [d.to_record() for d in via_event]


def test_a_high_value_customer_pushed_out_by_a_switch_raises_the_alert() -> None:
    hnw_up = _rules('version = "v-hnw"\n[tiers]\nhnw = "2000000"\n')
    tl = RulesTimeline(RULES, [(E, hnw_up)])
    s = _customer("1500000")
    fired = fire_timers(s, E + HOUR, "tick", tl).decisions
    assert [(c.from_tier, c.to_tier) for c in changes(fired)] == [("hnw", "affluent")]
    alerts = [d for d in fired if isinstance(d, Alert)]
    assert [(a.kind, a.severity, a.cause_event_id) for a in alerts] == [
        ("high_value_downgrade", "warning", "rules:v-hnw")
    ]


# ------------------------------------------------------------------ properties

VERSIONS = [RAISED, LOWERED, CAPPED, _rules('version = "v-avg"\n[tiers]\nbasis = "avg_daily"\n')]
HORIZON = 60 * DAY
_TIER_KINDS = {"wealth_products", "relationship_manager", "private_banking_invitation"}
_TIER_KINDS |= {"high_value_downgrade"}


@st.composite
def scenarios(draw) -> tuple[list[InputEvent], RulesTimeline]:  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, 12))
    times = sorted(draw(st.lists(st.integers(0, HORIZON), min_size=n, max_size=n)))
    events: list[InputEvent] = [
        prof(T0, consent=draw(st.booleans()), birth_date=None, event_id="p")
    ]
    for i, t in enumerate(times):
        amount = draw(st.sampled_from(["0", "420000", "460000", "600000", "650000", "1300000"]))
        events.append(bal(T0 + t, amount, event_id=f"b{i}", account=draw(st.sampled_from("ab"))))
    k = draw(st.integers(0, 3))
    starts = sorted(set(draw(st.lists(st.integers(1, HORIZON), min_size=k, max_size=k))))
    chosen = draw(st.permutations(VERSIONS))[: len(starts)]  # each version once
    return events, RulesTimeline(RULES, [(T0 + s, r) for s, r in zip(starts, chosen, strict=True)])


def _replay(events: list[InputEvent], ticks: list[int], tl: RulesTimeline) -> list[bytes]:
    state: CustomerState | None = None
    out: list[bytes] = []
    merged = sorted([(e.ts, 1, i) for i, e in enumerate(events)] + [(t, 0, -1) for t in ticks])
    for ts, is_event, i in merged:
        if is_event:
            o = apply(state, events[i], tl)
        elif state is not None:
            due = next_due_ms(state, tl)
            o = fire_timers(state, ts, f"tick-{ts}", tl)
            assert not o.decisions or (due is not None and due <= ts)
        else:
            continue
        state = o.state
        # what a tier change brings names its cause (the event or the trigger); the
        # other timers (dormancy, reviews) name whatever tick or event fired them
        out += [
            msgspec.json.encode(d.to_record())
            for d in o.decisions
            if isinstance(d, TierChange) or d.kind in _TIER_KINDS
        ]
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(1, 2 * DAY))
def test_the_same_records_whatever_brings_the_time(
    scenario: tuple[list[InputEvent], RulesTimeline], jitter: int
) -> None:
    events, tl = scenario
    end = T0 + HORIZON + 30 * DAY
    spacings = [
        [*range(T0, end, 3 * HOUR), end],
        [*range(T0 + jitter, end, DAY + jitter), end],
        [end],
    ]
    results = [_replay(events, ticks, tl) for ticks in spacings]
    assert results[0] == results[1] == results[2]
    ids = [msgspec.json.decode(r)["event_id"] for r in results[0]]
    assert len(ids) == len(set(ids))  # each decision once
