"""Two kinds of consent (issue 22): marketing offers need marketing consent; service
contacts (relationship reviews, risk-assessment renewal, suitability warnings, dormancy
outreach) need none but respect the profile's service_contact_opt_out; every offer and
alert says which it is."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.decoder import validate_output
from state.core import apply, fire_timers
from state.customer import CustomerState
from state.decisions import Alert, Offer
from state.offers import SERVICE_OFFER_KINDS
from state.triggers import next_due_ms
from tests.state.helpers import RULES, assess, at, bal, prof, run, tx

MIDNIGHT = 0  # at(day, MIDNIGHT): local midnight starting that day


def _hnw(consent: bool, opt_out: bool = False) -> CustomerState:
    p = replace(prof(at(0), consent=consent), service_contact_opt_out=opt_out)
    s, _ = run([p, assess(at(0), 70), bal(at(1), "2000000")])
    return s


def tick(s: CustomerState, ts: int) -> list[Offer | Alert]:
    return [d for d in fire_timers(s, ts, f"tick-{ts}", RULES).decisions]  # type: ignore[misc]


def kinds(decisions: list[Offer | Alert]) -> list[str]:
    return [d.kind for d in decisions]


@pytest.mark.parametrize("consent", [True, False])
def test_reviews_need_no_marketing_consent(consent: bool) -> None:
    s = _hnw(consent)
    assert next_due_ms(s, RULES) == at(31, MIDNIGHT)  # hnw: every 30 days from 01-02
    (review,) = tick(s, at(32))
    assert isinstance(review, Offer) and review.kind == "relationship_review"
    assert review.purpose == "service"
    validate_output("offers", review.to_record())


def test_a_service_opt_out_stops_reviews_and_renewals() -> None:
    s = _hnw(consent=True, opt_out=True)
    assert next_due_ms(s, RULES) == at(90, MIDNIGHT)  # only dormancy is left (seen 01-01)
    decisions = tick(s, at(400))
    assert "relationship_review" not in kinds(decisions)
    assert "risk_assessment_due" not in kinds(decisions)  # expiry: a service contact
    # the marketing offers still follow marketing consent alone
    assert "reactivation" in kinds(decisions)
    dormant = [d for d in decisions if d.kind == "dormant_high_value"]
    assert dormant and dormant[0].reason["service_contact_opt_out"] == "true"


def test_assessment_renewal_on_a_buy_without_marketing_consent() -> None:
    s = _hnw(consent=False)
    s.assessed_ts = -1  # no assessment on record
    s.risk_type = None
    out = apply(s, tx(at(2), "1000", type="investment_buy", product_risk=2), RULES).decisions
    due = [d for d in out if isinstance(d, Offer)]
    assert [(d.kind, d.purpose) for d in due] == [("risk_assessment_due", "service")]
    warning = [d for d in out if isinstance(d, Alert)]
    assert [(a.kind, a.purpose) for a in warning] == [("suitability_mismatch", "service")]
    assert "service_contact_opt_out" not in warning[0].reason


def test_a_suitability_warning_still_reaches_staff_after_an_opt_out() -> None:
    s = _hnw(consent=True, opt_out=True)
    out = apply(s, tx(at(2), "1000", type="investment_buy", product_risk=5), RULES).decisions
    (alert,) = [d for d in out if isinstance(d, Alert)]
    assert alert.kind == "suitability_mismatch" and alert.severity == "critical"
    assert alert.reason["service_contact_opt_out"] == "true"
    validate_output("alerts", alert.to_record())
    assert not [d for d in out if isinstance(d, Offer)]  # no renewal offer: valid C4


def test_marketing_offers_still_need_marketing_consent() -> None:
    for consent in (True, False):
        p = replace(prof(at(0), consent=consent), service_contact_opt_out=True)
        _, outs = run([p, bal(at(1), "700000")])
        offers = [d for d in outs[-1].decisions if isinstance(d, Offer)]
        assert [o.purpose for o in offers] == (["marketing"] if consent else [])


def test_the_opt_out_is_last_writer_wins_with_the_profile() -> None:
    s = _hnw(consent=False, opt_out=True)
    apply(s, prof(at(0, 5), consent=False), RULES)  # older than the one in force
    assert s.service_opt_out
    apply(s, prof(at(3), consent=False), RULES)  # newer, without the field: default false
    assert not s.service_opt_out


def test_every_kind_has_one_purpose() -> None:
    assert {"relationship_review", "risk_assessment_due"} == SERVICE_OFFER_KINDS
    assert RULES.offer_kinds >= SERVICE_OFFER_KINDS
