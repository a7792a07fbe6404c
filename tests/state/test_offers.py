"""Offers: each kind, marketing consent, and the per-kind cadence."""

from __future__ import annotations

from schemas.events import InputEvent
from state.decisions import Offer
from tests.state.helpers import (
    RULES,
    all_kinds,
    assess,
    at,
    bal,
    kinds,
    prof,
    rules_with,
    run,
    tx,
)


def offers(outs) -> list[Offer]:  # type: ignore[no-untyped-def]
    return [d for o in outs for d in o.decisions if isinstance(d, Offer)]


def test_entering_each_tier_sends_its_offer() -> None:
    _, outs = run(
        [
            prof(at(0)),
            assess(at(0, 13), 90),  # C5: no risk_assessment_due alongside
            bal(at(1), "100"),
            bal(at(2), "600000"),
            bal(at(3), "2000000"),
            bal(at(4), "7000000"),
        ]
    )
    assert [(o.kind, o.tier) for o in offers(outs)] == [
        ("wealth_products", "affluent"),
        ("relationship_manager", "hnw"),
        ("private_banking_invitation", "private"),
    ]
    o = offers(outs)[0]
    assert o.cause_event_id == outs[3].decisions[0].cause_event_id
    assert o.rules_version == RULES.version
    assert [o.reason["products"] for o in offers(outs)] == [
        "WM-03,BOND-02,DEP-TD-12M,MMF-01",
        "EQ-04,WM-03,BOND-02,DEP-TD-12M,MMF-01",
        "SP-05,EQ-04,WM-03,BOND-02,DEP-TD-12M",
    ]


def test_recommending_offers_without_assessment_add_risk_assessment_due() -> None:
    _, outs = run([prof(at(0)), bal(at(1), "1500000")])
    assert kinds(outs[1]) == ["tier:hnw", "relationship_manager", "risk_assessment_due"]
    rm, due = offers(outs)
    assert rm.reason["products"] == "DEP-TD-12M,MMF-01"  # R1 only
    assert rm.reason["risk_type"] == ""
    assert due.reason["for_offer"] == "relationship_manager"
    assert due.cause_event_id == rm.cause_event_id and due.event_id != rm.event_id


def test_initial_tier_counts_as_entering() -> None:
    _, outs = run([prof(at(0)), assess(at(0), 50), bal(at(1), "1500000")])
    assert kinds(outs[2]) == ["tier:hnw", "relationship_manager"]


def test_no_offer_without_consent_or_without_a_profile() -> None:
    _, outs = run([bal(at(1), "600000")])
    assert kinds(outs[0]) == ["tier:affluent"]
    _, outs = run([prof(at(0), consent=False), bal(at(1), "600000")])
    assert kinds(outs[1]) == ["tier:affluent"]


def test_withdrawn_consent_stops_offers() -> None:
    _, outs = run([prof(at(0)), prof(at(1), consent=False), bal(at(2), "700000")])
    assert all_kinds(outs) == ["tier:affluent"]


def test_no_offer_on_downgrade() -> None:
    _, outs = run([prof(at(0)), bal(at(1), "2000000"), bal(at(40), "600000")])
    # the review due on day 31 (30 days in hnw without contact) fires first, on the
    # state before the downgrade; the downgrade itself sends no offer
    assert kinds(outs[2]) == [
        "relationship_review",
        "tier:affluent",
        "high_value_downgrade",
        "aum_drop",
    ]


def test_at_most_one_offer_per_kind_per_30_days() -> None:
    events = [
        prof(at(0)),
        assess(at(0), 50),
        bal(at(1), "600000"),
        bal(at(2), "100"),
        bal(at(3), "600000"),
    ]
    _, outs = run(events)
    assert kinds(outs[4]) == ["tier:affluent"]  # re-entered within 30 days: no offer
    _, outs = run([*events, bal(at(20), "100"), bal(at(31), "600000")])
    assert kinds(outs[6]) == ["tier:affluent", "wealth_products"]  # 30 days after day 1


def test_cadence_is_configurable_per_kind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = rules_with(tmp_path, "[offers.cooldown_days]\nwealth_products = 0\n")
    events = [
        prof(at(0)),
        assess(at(0), 50),
        bal(at(1), "600000"),
        bal(at(2), "100"),
        bal(at(3), "600000"),
    ]
    _, outs = run(events, rules=rules)
    assert kinds(outs[4]) == ["tier:affluent", "wealth_products"]


def test_sme_entering_affluent_or_above_gets_sme_credit() -> None:
    _, outs = run([prof(at(0), segment="sme"), assess(at(0), 50), bal(at(1), "1200000")])
    assert kinds(outs[2]) == ["tier:hnw", "relationship_manager", "sme_credit"]
    _, outs = run([prof(at(0), segment="retail"), bal(at(1), "1200000")])
    assert "sme_credit" not in kinds(outs[1])
    _, outs = run([prof(at(0), segment="sme"), bal(at(1), "100")])
    assert kinds(outs[1]) == ["tier:mass"]


def _young_offline(channel: str, n: int = 5, birth: str = "2000-02-01") -> list:  # type: ignore[type-arg]
    return [prof(at(0), birth_date=birth)] + [
        tx(at(1 + i), "50", channel=channel) for i in range(n)
    ]


def test_digital_banking_for_young_branch_and_atm_customers() -> None:
    _, outs = run([*_young_offline("branch", 4), tx(at(6), "50", channel="atm")])
    # the 5th transaction reaches the minimum count; 5/5 offline
    assert all_kinds(outs) == ["tier:mass", "digital_banking"]
    offer = offers(outs)[0]
    assert offer.reason["age"] == "25"
    assert offer.reason["branch_atm_transactions"] == "5"


def test_digital_banking_needs_more_than_half_offline() -> None:
    events: list[InputEvent] = [prof(at(0), birth_date="2000-02-01")]
    events += [
        tx(at(1 + i), "50", channel=c) for i, c in enumerate(["mobile"] * 3 + ["branch"] * 3)
    ]
    _, outs = run(events)
    assert "digital_banking" not in all_kinds(outs)  # 3 of 6 is not "mostly"


def test_digital_banking_not_for_30_and_over_or_unknown_age() -> None:
    _, outs = run(_young_offline("branch", birth="1995-01-01"))  # 31 in 2026
    assert "digital_banking" not in all_kinds(outs)
    _, outs = run(_young_offline("branch", birth="1996-01-03"))  # turns 30 on day 2
    assert "digital_banking" not in all_kinds(outs)
    events = [prof(at(0), birth_date=None)] + [tx(at(1 + i), "50", channel="atm") for i in range(6)]
    assert "digital_banking" not in all_kinds(run(events)[1])


def test_birthday_is_no_longer_greeted_by_ordinary_events() -> None:
    """Since issue 9 the greeting is a timer (tests/state/test_triggers.py): an event
    after the birthday does not greet by itself -- only the timer due on the day does,
    here fired by the catch-up before the later event."""
    events = [prof(at(0), birth_date="1980-01-10"), tx(at(4), "1"), tx(at(11), "1")]
    _, outs = run(events)
    assert kinds(outs[1]) == ["tier:mass"]
    (greeting,) = offers(outs)
    assert greeting.kind == "birthday_greeting"
    assert greeting.ts == at(9, 0)  # local midnight of 2026-01-10, not the event's time
    assert greeting.cause_event_id == events[2].event_id  # fired on that event's catch-up


def test_offer_ids_are_deterministic_and_distinct_per_kind() -> None:
    e = [prof(at(0), segment="sme", event_id="p"), bal(at(1), "600000", event_id="b")]
    ids1 = [d.event_id for o in run(e)[1] for d in o.decisions]
    ids2 = [d.event_id for o in run(e)[1] for d in o.decisions]
    # tier change, wealth_products, risk_assessment_due (no assessment), sme_credit
    assert ids1 == ids2 and len(set(ids1)) == len(ids1) == 4
