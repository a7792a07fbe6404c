"""Alerts: each kind, its trigger boundary, severity and the numbers behind it."""

from __future__ import annotations

from state.decisions import Alert
from tests.state.helpers import RULES, all_kinds, assess, at, bal, kinds, rules_with, run, tx


def alerts(outs, kind: str) -> list[Alert]:  # type: ignore[no-untyped-def]
    return [d for o in outs for d in o.decisions if isinstance(d, Alert) and d.kind == kind]


# ---------------------------------------------------------------- large_outflow


def test_large_outflow_at_half_the_aum_before() -> None:
    _, outs = run([bal(at(0), "10000"), tx(at(1), "5000", type="withdrawal", balance_after="5000")])
    (a,) = alerts(outs, "large_outflow")
    assert a.severity == "warning"
    assert a.reason["amount_cny"] == "5000.00"
    assert a.reason["aum_before_cny"] == "10000.00"
    assert a.reason["ratio"] == "0.5000"
    assert a.reason["rule"] == "ratio"


def test_no_large_outflow_below_half_or_for_credits() -> None:
    _, outs = run([bal(at(0), "10000"), tx(at(1), "4999.99", type="transfer_out")])
    assert alerts(outs, "large_outflow") == []
    _, outs = run([bal(at(0), "10000"), tx(at(1), "9000", type="deposit")])
    assert alerts(outs, "large_outflow") == []
    _, outs = run([tx(at(1), "9000", type="withdrawal")])  # AUM unknown (0): no ratio
    assert alerts(outs, "large_outflow") == []


def test_large_outflow_by_amount_for_hnw_is_critical() -> None:
    # 5M AUM (hnw): 600k is only 12%, but above the 500k absolute line
    _, outs = run([bal(at(0), "5000000"), tx(at(1), "600000", type="transfer_out")])
    (a,) = alerts(outs, "large_outflow")
    assert a.severity == "critical" and a.reason["rule"] == "amount"
    assert a.reason["tier"] == "hnw"
    # the same debit from an affluent customer is below both lines
    _, outs = run([bal(at(0), "1500000"), tx(at(1), "499999", type="transfer_out")])
    assert alerts(outs, "large_outflow") == []


def test_large_outflow_converts_currency() -> None:
    # USD 800 x 7.10 = 5680 CNY >= 50% of 10000
    _, outs = run([bal(at(0), "10000"), tx(at(1), "800", type="card_payment", currency="USD")])
    (a,) = alerts(outs, "large_outflow")
    assert a.reason["amount_cny"] == "5680.00"


# ---------------------------------------------------------------- aum_drop


def test_aum_drop_30_percent_within_7_days_for_affluent() -> None:
    _, outs = run([bal(at(0), "800000"), bal(at(3), "560000")])  # exactly -30%
    (a,) = alerts(outs, "aum_drop")
    assert a.severity == "warning"
    assert a.reason["peak_aum_cny"] == "800000.00"
    assert a.reason["drop_ratio"] == "0.3000"


def test_aum_drop_not_below_30_percent_nor_over_more_than_7_days() -> None:
    _, outs = run([bal(at(0), "800000"), bal(at(3), "560000.01")])
    assert alerts(outs, "aum_drop") == []
    # 800k on day 0; the level on day 7 window start (day 1..7) is still 800k -> alert
    _, outs = run([bal(at(0), "800000"), bal(at(7), "500000")])
    assert len(alerts(outs, "aum_drop")) == 1
    # a gradual decline: never 30% below any level of the previous 7 days
    steps = ["800000", "700000", "620000", "560000", "500000"]
    _, outs = run([bal(at(4 * i), v) for i, v in enumerate(steps)])
    assert alerts(outs, "aum_drop") == []


def test_aum_drop_sees_an_intraday_peak() -> None:
    _, outs = run([bal(at(0), "600000"), bal(at(1, 9), "1000000"), bal(at(1, 15), "650000")])
    (a,) = alerts(outs, "aum_drop")
    assert a.reason["peak_aum_cny"] == "1000000.00"


def test_aum_drop_critical_at_half_and_not_for_mass() -> None:
    _, outs = run([bal(at(0), "2000000"), bal(at(2), "900000")])
    assert [a.severity for a in alerts(outs, "aum_drop")] == ["critical"]
    _, outs = run([bal(at(0), "400000"), bal(at(2), "100")])
    assert alerts(outs, "aum_drop") == []


def test_aum_drop_cooldown_suppresses_repeats() -> None:
    _, outs = run([bal(at(0), "800000"), bal(at(1), "500000"), bal(at(2), "100000")])
    assert len(alerts(outs, "aum_drop")) == 1


# ---------------------------------------------------------------- high_value_downgrade


def test_high_value_downgrade_leaving_hnw_and_private() -> None:
    _, outs = run([bal(at(0), "1200000"), bal(at(1), "100")])
    (a,) = alerts(outs, "high_value_downgrade")
    assert a.severity == "warning"
    assert (a.reason["from_tier"], a.reason["to_tier"]) == ("hnw", "mass")
    _, outs = run([bal(at(0), "7000000"), bal(at(1), "2000000")])
    (a,) = alerts(outs, "high_value_downgrade")
    assert a.severity == "critical" and a.reason["to_tier"] == "hnw"
    _, outs = run([bal(at(0), "700000"), bal(at(1), "100")])  # leaving affluent
    assert alerts(outs, "high_value_downgrade") == []


# ---------------------------------------------------------------- suitability_mismatch


def test_suitability_mismatch_when_product_risk_exceeds_risk_type() -> None:
    base = [assess(at(0), 50)]  # C3
    _, outs = run([*base, tx(at(1), "1000", type="investment_buy", product_risk=4)])
    (a,) = alerts(outs, "suitability_mismatch")
    assert a.severity == "critical"
    assert (a.reason["product_risk"], a.reason["risk_type"]) == ("R4", "C3")
    _, outs = run([*base, tx(at(1), "1000", type="investment_buy", product_risk=3)])
    assert alerts(outs, "suitability_mismatch") == []


def test_suitability_without_valid_assessment_is_a_warning() -> None:
    _, outs = run([tx(at(1), "1000", type="investment_buy", product_risk=1)])
    (a,) = alerts(outs, "suitability_mismatch")
    assert a.severity == "warning" and a.reason["problem"] == "no_valid_assessment"
    # expired: assessed 365 days before the buy
    _, outs = run([assess(at(0), 90), tx(at(365), "1", type="investment_buy", product_risk=1)])
    (a,) = alerts(outs, "suitability_mismatch")
    assert a.reason["problem"] == "no_valid_assessment" and a.reason["assessed_at"] != ""
    _, outs = run([assess(at(0), 90), tx(at(364), "1", type="investment_buy", product_risk=1)])
    assert alerts(outs, "suitability_mismatch") == []


def test_inexperienced_investors_are_capped_at_c3() -> None:
    st, outs = run([assess(at(0), 95, 0.5), tx(at(1), "1", type="investment_buy", product_risk=4)])
    assert st.risk_type == "C3"
    assert len(alerts(outs, "suitability_mismatch")) == 1
    st, _ = run([assess(at(0), 95, 1.0)])
    assert st.risk_type == "C5"


def test_risk_type_mapping() -> None:
    from state.risk import risk_type

    got = [risk_type(s, 10.0, RULES) for s in (0, 19, 20, 39, 40, 59, 60, 79, 80, 100)]
    assert got == ["C1", "C1", "C2", "C2", "C3", "C3", "C4", "C4", "C5", "C5"]


def test_newer_assessment_wins_and_older_is_ignored() -> None:
    st, _ = run([assess(at(5), 90), assess(at(2), 10)])
    assert st.risk_type == "C5" and st.risk_score == 90


# ---------------------------------------------------------------- churn_risk


def test_churn_risk_when_p_alive_falls_for_affluent(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # frequent buyer (daily for 30 days) who then goes silent: P(alive) collapses
    events = [bal(at(0), "800000")] + [tx(at(d), "100") for d in range(30)]
    st, outs = run(events)
    assert alerts(outs, "churn_risk") == []
    st, outs = run([bal(at(80), "800000")], state=st)
    (a,) = alerts(outs, "churn_risk")
    assert a.severity == "warning"
    assert float(a.reason["p_alive"]) < RULES.churn_p_alive
    assert (a.reason["x"], a.reason["t_x_days"], a.reason["T_days"]) == ("29", "29", "80")
    # cooldown: the next day's event does not re-alert
    st, outs = run([bal(at(81), "800001")], state=st)
    assert alerts(outs, "churn_risk") == []


def test_no_churn_risk_for_mass() -> None:
    events = [tx(at(d), "100") for d in range(30)] + [tx(at(80), "1")]
    assert "churn_risk" not in all_kinds(run(events)[1])


def test_alert_cooldown_configurable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = rules_with(tmp_path, "[alerts.cooldown_days]\naum_drop = 0\n")
    _, outs = run([bal(at(0), "800000"), bal(at(1), "500000"), bal(at(2), "100000")], rules=rules)
    assert len(alerts(outs, "aum_drop")) == 2
    assert kinds(outs[1])  # sanity: something fired
