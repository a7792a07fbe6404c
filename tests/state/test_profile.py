"""The Redis profile fields."""

from __future__ import annotations

from state.profile import PROFILE_FIELDS, profile_fields
from tests.state.helpers import RULES, assess, at, bal, prof, run, tx


def test_all_fields_present_as_strings_for_a_new_customer() -> None:
    st, _ = run([prof(at(0))])
    p = profile_fields(st, RULES)
    assert tuple(p) == PROFILE_FIELDS
    assert all(isinstance(v, str) for v in p.values())
    assert p["tier"] == "" and p["rfm_segment"] == "" and p["p_alive"] == "" and p["clv"] == ""
    assert p["version"] == "1"
    assert p["updated_at"] == "2026-01-01T04:00:00.000Z"


def test_profile_values() -> None:
    events = [
        assess(at(0), 65),
        bal(at(0), "820000.5"),
        tx(at(1), "1000", channel="branch"),
        tx(at(2), "2000", channel="mobile"),
        tx(at(2, 14), "3000.25", channel="mobile"),
        bal(at(12), "820000.5", account="acc2", product="loan"),
    ]
    st, _ = run(events)
    p = profile_fields(st, RULES)
    assert p["customer_id"] == "c1"
    assert p["tier"] == "affluent"
    assert p["aum_cny"] == "820000.50"
    assert p["recency_days"] == "10"  # last transaction day 2, measured at day 12
    assert p["frequency"] == "3"
    assert p["monetary_cny"] == "6000.25"
    assert (p["r_score"], p["f_score"], p["m_score"]) == ("4", "2", "2")
    assert p["rfm_segment"] == "potential"
    assert p["risk_type"] == "C4"
    assert p["preferred_channel"] == "mobile"
    assert p["version"] == "6"
    assert 0.0 < float(p["p_alive"]) <= 1.0
    assert float(p["clv"]) > 0
    assert p["updated_at"] == "2026-01-13T04:00:00.000Z"


def test_expired_assessment_shows_no_risk_type() -> None:
    st, _ = run([assess(at(0), 65), bal(at(400), "1")])
    assert profile_fields(st, RULES)["risk_type"] == ""
