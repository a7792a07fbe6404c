"""Offer responses in the core (issue 23): attribution, every edge case the docs
define (docs/topics.md "offer-responses"), the decline cool-down, and a randomized
comparison with an independent model of the same definitions."""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgspec
import pytest

from schemas.events import OFFER_OUTCOMES, OfferResponse
from state.core import CoreError, Outcome, apply
from state.customer import CustomerState, OfferOutcome, event_key
from state.decisions import Offer, TierChange
from state.timeline import RulesTimeline
from tests.state.helpers import DAY, RULES, assess, at, bal, eid, kinds, prof, rules_with, run
from tests.state.test_triggers import _rules

MISSING = "f" * 32  # an offer id no offer has


def resp(
    ts: int,
    offer: Offer | str,
    outcome: str = "accepted",
    *,
    customer: str = "c1",
    event_id: str | None = None,
) -> OfferResponse:
    offer_id = offer.event_id if isinstance(offer, Offer) else offer
    return OfferResponse(
        event_id=event_id or eid("resp"),
        customer_id=customer,
        ts=ts,
        offer_event_id=offer_id,
        outcome=outcome,
        channel="mobile",
    )


def offers_of(outs: Sequence[Outcome]) -> list[Offer]:
    return [d for o in outs for d in o.decisions if isinstance(d, Offer)]


def affluent_customer(customer: str = "c1") -> tuple[CustomerState, Offer]:
    """A consenting, assessed customer who just entered affluent: one wealth offer."""
    state, outs = run(
        [
            prof(at(0), customer=customer),
            assess(at(0, 13), 50, customer=customer),
            bal(at(1), "600000", customer=customer),
        ]
    )
    (offer,) = offers_of(outs)
    assert (offer.kind, offer.tier) == ("wealth_products", "affluent")
    return state, offer


# ------------------------------------------------------------------ attribution


def test_every_offer_is_remembered_with_its_kind_and_tier() -> None:
    state, offer = affluent_customer()
    (made,) = state.recent_offers
    assert (made.key, made.ts, made.kind, made.tier) == (
        event_key(offer.event_id),
        offer.ts,
        "wealth_products",
        "affluent",
    )


def test_a_response_to_a_known_offer_is_attributed_to_its_kind_and_tier() -> None:
    state, offer = affluent_customer()
    version = state.version
    bal_up = apply(state, bal(at(2), "2000000"), RULES).state  # now hnw
    assert bal_up.tier == "hnw"
    out = apply(state, resp(at(3), offer, "accepted"), RULES)
    assert out.status == "applied"
    # the tier in the offer, not the customer's tier now
    assert out.answered == ("wealth_products", "affluent", "accepted")
    assert out.decisions == ()
    assert state.offer_outcomes == {
        "wealth_products": OfferOutcome("accepted", at(3), out_key(out))
    }
    assert state.version == version + 2  # the balance, then the response
    assert state.updated_at == at(3)


def out_key(outcome: Outcome) -> int:
    (o,) = outcome.state.offer_outcomes.values()
    return o.tie


def test_a_redelivered_response_is_a_duplicate_and_changes_nothing() -> None:
    state, offer = affluent_customer()
    r = resp(at(3), offer, "declined")
    apply(state, r, RULES)
    before = state.to_bytes()
    again = apply(state, r, RULES)
    assert again.status == "duplicate" and again.answered is None
    assert state.to_bytes() == before


def test_the_latest_response_by_event_time_is_the_kinds_outcome() -> None:
    state, offer = affluent_customer()
    assert apply(state, resp(at(3), offer, "ignored"), RULES).status == "applied"
    later = apply(state, resp(at(5), offer, "accepted"), RULES)
    assert later.answered == ("wealth_products", "affluent", "accepted")
    assert state.offer_outcomes["wealth_products"].outcome == "accepted"
    # an older answer arriving late (another event_id) is counted, but does not roll
    # the kind's outcome back
    late = apply(state, resp(at(4), offer, "declined"), RULES)
    assert late.answered == ("wealth_products", "affluent", "declined")
    assert state.offer_outcomes["wealth_products"].outcome == "accepted"


def test_equal_times_go_to_the_larger_event_key_whatever_the_order() -> None:
    ids = ["r-a", "r-b"]
    winner = max(ids, key=event_key)
    results = set()
    for order in (ids, ids[::-1]):
        state, offer = affluent_customer()
        for rid in order:
            outcome = "accepted" if rid == winner else "declined"
            apply(state, resp(at(3), offer, outcome, event_id=rid), RULES)
        results.add(state.offer_outcomes["wealth_products"].outcome)
    assert results == {"accepted"}


def test_a_response_stamped_before_its_offer_is_unmatched() -> None:
    state, offer = affluent_customer()
    out = apply(state, resp(offer.ts - 1, offer), RULES)
    assert out.status == "unmatched" and out.answered is None
    assert state.offer_outcomes == {}
    # it is still an applied event of the customer: a redelivery is a duplicate
    assert apply(state, resp(offer.ts - 1, offer, event_id="x"), RULES).status == "unmatched"
    assert apply(state, resp(offer.ts - 1, offer, event_id="x"), RULES).status == "duplicate"
    # at the offer's own time it matches
    assert apply(state, resp(offer.ts, offer), RULES).status == "applied"


def test_a_response_to_an_unknown_offer_is_unmatched() -> None:
    state, _offer = affluent_customer()
    version = state.version
    out = apply(state, resp(at(3), MISSING), RULES)
    assert (out.status, out.answered, out.decisions) == ("unmatched", None, ())
    assert state.offer_outcomes == {}
    assert state.version == version + 1  # applied as an event of the customer


def test_a_response_naming_another_customers_offer_is_unmatched() -> None:
    _other, offer = affluent_customer("c2")
    state, _own = affluent_customer("c1")
    out = apply(state, resp(at(3), offer), RULES)
    assert out.status == "unmatched"
    assert state.offer_outcomes == {}


def test_a_response_for_a_customer_without_state_creates_none() -> None:
    out = apply(None, resp(at(3), MISSING, customer="nobody"), RULES)
    assert (out.status, out.answered, out.decisions) == ("unmatched", None, ())
    assert out.state.version == 0  # a blank state: the shell stores nothing for it
    assert out.state == CustomerState("nobody")


def test_only_the_latest_answerable_offers_can_be_answered(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = rules_with(
        tmp_path, "[offers]\nanswerable_offers = 2\n[offers.cooldown_days]\nwealth_products = 0\n"
    )
    events = [prof(at(0)), assess(at(0, 13), 50)]
    for day in range(1, 7):  # in and out of affluent: a wealth offer every other day
        events.append(bal(at(day), "600000" if day % 2 else "100"))
    state, outs = run(events, rules=rules)
    made = offers_of(outs)
    assert len(made) == 3 and len(state.recent_offers) == 2
    assert apply(state, resp(at(8), made[0]), rules).status == "unmatched"  # evicted
    assert apply(state, resp(at(8), made[1]), rules).status == "applied"
    assert apply(state, resp(at(8), made[2]), rules).status == "applied"


def test_a_response_fires_the_timers_due_before_it() -> None:
    state, offer = affluent_customer()
    state2, _ = run([bal(at(2), "2000000")], state)  # hnw: a review is due 30 days on
    out = apply(state2, resp(at(40), offer), RULES)
    assert kinds(out) == ["relationship_review"]
    assert out.answered == ("wealth_products", "affluent", "accepted")


def test_an_unknown_outcome_is_a_core_error_and_changes_nothing() -> None:
    state, offer = affluent_customer()
    before = state.to_bytes()
    with pytest.raises(CoreError) as info:
        apply(state, resp(at(3), offer, "maybe"), RULES)
    assert info.value.field == "outcome"
    assert state.to_bytes() == before


# ------------------------------------------------------------------ decline cool-down


def test_a_declined_kind_waits_after_decline_days_before_it_is_offered_again() -> None:
    state, offer = affluent_customer()
    apply(state, resp(at(2), offer, "declined"), RULES)
    state, outs = run(
        [
            bal(at(40), "100"),
            bal(at(41), "600000"),  # 31 days after the offer: the cap allows it ...
            bal(at(80), "100"),
            bal(at(92), "600000"),  # 90 days after the decline (day 2): allowed again
        ],
        state,
    )
    assert kinds(outs[1]) == ["tier:affluent"]  # ... the decline does not
    assert kinds(outs[3]) == ["tier:affluent", "wealth_products"]


def test_accepting_or_ignoring_later_lifts_the_decline() -> None:
    for last in ("accepted", "ignored"):
        state, offer = affluent_customer()
        apply(state, resp(at(2), offer, "declined"), RULES)
        apply(state, resp(at(3), offer, last), RULES)
        _, outs = run([bal(at(40), "100"), bal(at(41), "600000")], state)
        assert kinds(outs[1]) == ["tier:affluent", "wealth_products"], last


def test_a_decline_holds_back_only_its_own_kind() -> None:
    state, offer = affluent_customer()
    apply(state, resp(at(2), offer, "declined"), RULES)
    _, outs = run([bal(at(3), "2000000")], state)
    assert kinds(outs[0]) == ["tier:hnw", "relationship_manager"]


def test_an_offer_dated_before_the_decline_is_not_held_back() -> None:
    """Event time decides: at an earlier time the customer had not declined yet."""
    state, offer = affluent_customer()
    apply(state, resp(at(50), offer, "declined"), RULES)
    _, outs = run([bal(at(40), "100"), bal(at(41), "600000")], state)
    assert kinds(outs[1]) == ["tier:affluent", "wealth_products"]


def test_after_decline_days_is_configurable_per_kind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = rules_with(tmp_path, "[offers.after_decline_days]\nwealth_products = 0\n")
    assert rules.after_decline_ms("wealth_products") == 0
    assert rules.after_decline_ms("relationship_manager") == 90 * DAY
    assert rules.after_decline_ms("a_campaign_kind") == rules.after_decline_ms("campaign")
    state, outs = run([prof(at(0)), assess(at(0, 13), 50), bal(at(1), "600000")], rules=rules)
    (offer,) = offers_of(outs)
    apply(state, resp(at(2), offer, "declined"), rules)
    _, outs = run([bal(at(40), "100"), bal(at(41), "600000")], state, rules)
    assert kinds(outs[1]) == ["tier:affluent", "wealth_products"]


def test_the_new_keys_at_their_defaults_leave_the_derived_version_as_it_was(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = '[tiers]\naffluent = "400000"\n'
    plain = rules_with(tmp_path, text)
    same = rules_with(
        tmp_path,
        text + "[offers]\nanswerable_offers = 32\n[offers.after_decline_days]\nsme_credit = 90\n",
    )
    assert plain.version == same.version
    changed = rules_with(tmp_path, text + "[offers.after_decline_days]\nsme_credit = 5\n")
    assert changed.version != plain.version
    with pytest.raises(ValueError, match=r"offers\.answerable_offers"):
        rules_with(tmp_path, "[offers]\nanswerable_offers = 0\n")
    with pytest.raises(ValueError, match=r"offers\.after_decline_days\.sme_credit"):
        rules_with(tmp_path, "[offers.after_decline_days]\nsme_credit = -1\n")


# ------------------------------------------------------------------ the stored state


def test_the_new_fields_round_trip_and_an_older_v4_state_takes_their_defaults() -> None:
    state, offer = affluent_customer()
    apply(state, resp(at(2), offer, "declined"), RULES)
    assert CustomerState.from_bytes(state.to_bytes()) == state
    # an older v4 state: the same array without the fields appended from issue 23 on
    # (the array's first element is the version tag): the two of issue 23, then
    # ``below_since`` (issue 21), then the customer-value fields (issue 22)
    arr = msgspec.msgpack.decode(state.to_bytes())
    fields = CustomerState.__struct_fields__
    first = fields.index("recent_offers")
    assert fields[first : first + 3] == ("recent_offers", "offer_outcomes", "below_since")
    older = msgspec.msgpack.encode(arr[: 1 + first])
    loaded = CustomerState.from_bytes(older)
    assert loaded.recent_offers == [] and loaded.offer_outcomes == {}
    assert loaded.version == state.version
    # a v4 state of issue 23 without issue 21's field keeps its offers and outcomes
    loaded = CustomerState.from_bytes(msgspec.msgpack.encode(arr[: 1 + first + 2]))
    assert loaded.recent_offers == state.recent_offers and loaded.below_since == -1
    assert loaded.offer_outcomes == state.offer_outcomes


# ------------------------------------------------------------------ randomized


def _model_status(
    made: list[tuple[str, str, str, int]], window: int, offer_id: str, ts: int, known: bool
) -> str:
    """The definitions, independently: a customer without state -> unmatched; else
    matched iff the offer is among the latest ``window`` made and not after ``ts``."""
    if not known:
        return "unmatched"
    latest = made[-window:]
    return (
        "applied" if any(i == offer_id and t <= ts for i, _k, _tier, t in latest) else "unmatched"
    )


@pytest.mark.parametrize("seed", range(6))
def test_random_offers_and_responses_agree_with_an_independent_model(tmp_path, seed: int) -> None:  # type: ignore[no-untyped-def]
    rnd = random.Random(seed)
    window = rnd.choice([1, 2, 3, 32])
    rules = rules_with(
        tmp_path,
        f"[offers]\nanswerable_offers = {window}\n"
        "[offers.cooldown_days]\nwealth_products = 0\nrelationship_manager = 0\n"
        f"[offers.after_decline_days]\nwealth_products = {rnd.choice([0, 3])}\n"
        "relationship_manager = 0\n",
    )
    state: CustomerState | None = None
    made: list[tuple[str, str, str, int]] = []  # (offer id, kind, tier, ts) as made
    latest: dict[str, tuple[int, int, str]] = {}  # kind -> (ts, key, outcome)
    ts = at(0)
    events = [prof(ts), assess(ts + 1, 50)]
    for ev in events:
        state = apply(state, ev, rules).state
    levels = ["100", "600000", "2000000"]
    for step in range(120):
        ts += rnd.randint(0, 2) * DAY // 4
        if rnd.random() < 0.5 or not made:
            out = apply(state, bal(ts, rnd.choice(levels)), rules)
            state = out.state
            for d in out.decisions:
                if isinstance(d, Offer):
                    made.append((d.event_id, d.kind, d.tier, d.ts))
            continue
        choice = rnd.random()
        if choice < 0.7:
            offer_id = rnd.choice(made)[0]
        elif choice < 0.85:
            offer_id = MISSING
        else:
            offer_id = made[-1][0]
        rts = ts - rnd.choice([0, 0, 0, DAY])  # sometimes stamped a day back
        outcome = rnd.choice(OFFER_OUTCOMES)
        r = resp(rts, offer_id, outcome, event_id=f"s{seed}-{step}")
        expected = _model_status(made, window, offer_id, rts, state is not None)
        out = apply(state, r, rules)
        state = out.state
        assert out.status == expected, (step, offer_id, rts)
        if expected == "applied":
            kind, tier = next((k, t) for i, k, t, _ts in made if i == offer_id)
            assert out.answered == (kind, tier, outcome)
            key = event_key(r.event_id)
            cur = latest.get(kind)
            if cur is None or (rts, key) > (cur[0], cur[1]):
                latest[kind] = (rts, key, outcome)
        assert state is not None
        assert {k: o.outcome for k, o in state.offer_outcomes.items()} == {
            k: v[2] for k, v in latest.items()
        }
        assert len(state.recent_offers) == min(window, len(made))


# ------------------------------------------------------------------ under a rules timeline


def test_a_response_under_a_rules_timeline_is_decided_by_the_version_at_its_time() -> None:
    """Issue 21 and 23 together: a response after a switch brings the switch's re-tier
    (stamped with the new version), is attributed to the offer made under the old
    version (whose id derives from the old version), and the decline's cool-down is the
    one of the version in force when the next offer is due."""
    raised = '[tiers]\naffluent = "700000"\n'
    short = _rules(f'version = "2027.02-short"\n{raised}[offers.after_decline_days]\n'
                   "wealth_products = 10\n")  # fmt: skip
    long = _rules(f'version = "2027.02-long"\n{raised}')  # the default 90 days
    for v2, held in ((short, False), (long, True)):
        timeline = RulesTimeline(RULES, [(at(3), v2)])
        state, outs = run(
            [prof(at(0)), assess(at(0, 13), 50), bal(at(1), "600000")], rules=timeline
        )
        (offer,) = offers_of(outs)
        assert offer.rules_version == RULES.version
        out = apply(state, resp(at(4), offer, "declined"), timeline)
        assert out.status == "applied"
        assert out.answered == ("wealth_products", "affluent", "declined")
        (change,) = out.decisions  # the switch at at(3), brought by the response
        assert isinstance(change, TierChange) and change.to_tier == "mass"
        assert change.cause_event_id == f"rules:{v2.version}"
        assert (change.ts, change.rules_version) == (at(3), v2.version)
        assert state.offer_outcomes["wealth_products"].outcome == "declined"
        # back above the new floor 36 days after the decline, past the offer's cap
        up = apply(state, bal(at(40), "800000"), timeline)
        assert [d.rules_version for d in up.decisions] == [v2.version] * len(up.decisions)
        assert ("wealth_products" in kinds(up)) is not held, (v2.version, kinds(up))
