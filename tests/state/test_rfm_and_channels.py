"""RFM that drives something, and the channel offers (issue 22): the alert when a
frequent customer's recency slips; the monetary figures; average amount and channel
shares in the profile and in the digital-banking and priority-branch offers."""

from __future__ import annotations

import orjson
import pytest

from schemas.decoder import validate_output
from state.core import apply, fire_timers
from state.customer import CustomerState
from state.decisions import Alert, Offer
from state.profile import profile_fields
from state.triggers import next_due_ms
from tests.state.helpers import RULES, at, bal, prof, rules_with, run, tx

MIDNIGHT = 0


def frequent(aum: str = "2000000", n: int = 12, last: int = 20) -> CustomerState:
    """A customer with ``n`` card payments of 100.00 on days up to ``last``."""
    events: list[object] = [prof(at(0)), bal(at(0, 1), aum)]
    events += [tx(at(last - i), "100.00", type="card_payment") for i in range(n)]
    s, _ = run(sorted(events, key=lambda e: e.ts))  # type: ignore[attr-defined]
    return s


def alerts(decisions: tuple[object, ...]) -> list[Alert]:
    return [d for d in decisions if isinstance(d, Alert)]


def test_a_frequent_customer_whose_recency_slips_is_flagged() -> None:
    s = frequent()  # hnw, 12 transactions, the last on day 20
    assert profile_fields(s, RULES)["rfm_segment"] == "champions"
    due = at(20 + 31, MIDNIGHT)  # recency 31 > 30: R falls to 2
    assert next_due_ms(s, RULES) <= due  # type: ignore[operator]
    out = fire_timers(s, due + 1, "tick-0-1", RULES).decisions
    (alert,) = alerts(out)
    validate_output("alerts", alert.to_record())
    assert (alert.kind, alert.severity, alert.purpose) == ("rfm_slipping", "critical", "service")
    assert alert.ts == due and alert.reason["trigger"] == "rfm_slip:2026-02-21"
    assert alert.reason["segment"] == "at_risk"  # R 2, F 4 (12 >= 10), M 2 (1,200)
    assert (alert.reason["r_score"], alert.reason["f_score"], alert.reason["m_score"]) == (
        "2",
        "4",
        "2",
    )
    assert alert.reason["recency_days"] == "31" and alert.reason["monetary_cny"] == "1200.00"
    # once per slip; the cooldown keeps a second slip within 30 days quiet
    assert not alerts(fire_timers(s, at(90), "tick-0-2", RULES).decisions)


def test_the_same_alert_from_a_tick_or_from_the_next_event() -> None:
    a, b = frequent(), frequent()
    by_tick = alerts(fire_timers(a, at(60), "tick", RULES).decisions)
    by_event = [x for x in alerts(apply(b, bal(at(60), "2000000"), RULES).decisions)]
    slips = [x for x in by_event if x.kind == "rfm_slipping"]
    assert [(x.event_id, x.ts, x.reason) for x in by_tick] == [
        (x.event_id, x.ts, x.reason) for x in slips
    ]
    assert [x.cause_event_id for x in by_tick] == ["tick"]  # ids from the trigger alone


@pytest.mark.parametrize(
    ("aum", "n", "why"),
    [
        ("100000", 12, "mass: below care.slipping_min_tier"),
        ("2000000", 2, "F 2: hibernating, not in care.slipping_segments"),
    ],
)
def test_no_alert_for_others(aum: str, n: int, why: str) -> None:
    s = frequent(aum, n)
    assert not [
        a for a in alerts(fire_timers(s, at(80), "t", RULES).decisions) if a.kind == "rfm_slipping"
    ], why


def test_a_transaction_moves_the_slip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = frequent()
    apply(s, tx(at(40), "5.00", type="card_payment"), RULES)
    assert not [
        a for a in alerts(fire_timers(s, at(60), "t", RULES).decisions) if a.kind == "rfm_slipping"
    ]
    out = alerts(fire_timers(s, at(72), "t2", RULES).decisions)
    assert [a.reason["trigger"] for a in out] == ["rfm_slip:2026-03-13"]  # day 40 + 31


def test_segments_and_monetary_come_from_the_rules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = rules_with(
        tmp_path,
        '[care]\nslipping_segments = ["hibernating"]\nslipping_min_tier = "mass"\n'
        '[rfm]\nmonetary = "spend"\n',
    )
    s, _ = run(
        [prof(at(0)), bal(at(0), "1000"), tx(at(3), "60000.00", type="card_payment")], rules=rules
    )
    fields = profile_fields(s, rules)
    assert fields["spend_cny"] == "60000.00" and fields["m_score"] == "4"  # spend >= 50,000
    (alert,) = alerts(fire_timers(s, at(40), "t", rules).decisions)
    assert alert.reason["segment"] == "hibernating" and alert.reason["monetary"] == "spend"
    assert alert.severity == "warning"
    with pytest.raises(ValueError, match=r"care\.slipping_segments"):
        rules_with(tmp_path, '[care]\nslipping_segments = ["champions"]\n')


def test_inflow_and_spend_are_separate_figures() -> None:
    s, _ = run(
        [
            bal(at(0), "0"),
            tx(at(1), "3000.00", type="deposit"),
            tx(at(2), "500.00", type="transfer_in"),
            tx(at(3), "200.00", type="card_payment"),
            tx(at(4), "100.00", type="withdrawal"),
            tx(at(5), "50.00", type="transfer_out"),
            tx(at(6), "999.00", type="investment_buy"),
            tx(at(7), "10.00", type="fee"),
        ]
    )
    f = profile_fields(s, RULES)
    assert (f["inflow_cny"], f["spend_cny"]) == ("3500.00", "350.00")
    assert f["monetary_cny"] == "4849.00"  # turnover: every counted transaction (no fee)
    assert f["m_score"] == "2"  # the default basis: turnover, as before


# ------------------------------------------------------------------ channels


def test_average_amount_and_channel_shares_in_the_profile() -> None:
    s, _ = run(
        [
            tx(at(1), "100.00", channel="mobile"),
            tx(at(2), "200.00", channel="mobile"),
            tx(at(3), "0.01", channel="atm"),
            tx(at(4), "10.00", type="fee", channel="branch"),  # not counted
        ]
    )
    f = profile_fields(s, RULES)
    assert f["avg_amount_cny"] == "100.00"  # 300.01 / 3 = 100.0033...
    shares = orjson.loads(f["channel_shares"])
    assert shares == {
        "mobile": 0.6667,
        "online": 0.0,
        "branch": 0.0,
        "atm": 0.3333,
        "pos": 0.0,
        "call_center": 0.0,
    }
    assert profile_fields(run([bal(at(0), "1")])[0], RULES)["channel_shares"] == ""


def _branch_customer(amounts: list[str], channels: list[str], consent: bool = True):  # type: ignore[no-untyped-def]
    events: list[object] = [prof(at(0), consent=consent, birth_date="1960-01-01")]
    events += [
        tx(at(1 + i), a, type="transfer_out", channel=c)
        for i, (a, c) in enumerate(zip(amounts, channels, strict=True))
    ]
    return run(events)


def offers_of(outs) -> list[Offer]:  # type: ignore[no-untyped-def]
    return [d for o in outs for d in o.decisions if isinstance(d, Offer)]


def test_large_branch_transactions_get_priority_branch_service() -> None:
    _, outs = _branch_customer(["60000.00"] * 5, ["branch"] * 4 + ["mobile"])
    (offer,) = offers_of(outs)
    validate_output("offers", offer.to_record())
    assert (offer.kind, offer.purpose) == ("branch_priority", "marketing")
    assert offer.reason["branch_share"] == "0.8000"
    assert offer.reason["avg_amount_cny"] == "60000.00"
    # an average below 50,000: no offer; half at the branch: not MORE than half
    assert not offers_of(_branch_customer(["49999.99"] * 5, ["branch"] * 5)[1])
    assert not offers_of(_branch_customer(["60000.00"] * 6, ["atm", "branch"] * 3)[1])
    assert not offers_of(_branch_customer(["60000.00"] * 5, ["branch"] * 5, consent=False)[1])


def test_the_digital_nudge_is_for_everyday_amounts() -> None:
    def young(amount: str) -> list[Offer]:
        events: list[object] = [prof(at(0), birth_date="2000-01-01")]
        events += [tx(at(1 + i), amount, type="withdrawal", channel="atm") for i in range(5)]
        return offers_of(run(events)[1])

    (offer,) = young("300.00")
    assert offer.kind == "digital_banking"
    assert (
        offer.reason["branch_atm_share"] == "1.0000" and offer.reason["avg_amount_cny"] == "300.00"
    )
    assert [o.kind for o in young("50000.00")] == []  # at the limit: the branch's customer
