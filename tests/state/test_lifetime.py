"""Value-model inputs from the state, and the exact rescaling of days to CLV periods."""

from __future__ import annotations

from dataclasses import replace

import pytest

from state.customer import CustomerState
from state.lifetime import customer_clv, customer_p_alive, history, mean_repeat_spend_cny
from state.value import expected_avg_spend, expected_purchases, p_alive
from tests.state.helpers import RULES, at, bal, run, tx


def _customer() -> CustomerState:
    events = [tx(at(d), str(100 + d)) for d in (0, 3, 3, 10, 20)] + [bal(at(50), "1")]
    return run(events)[0]


def test_history_and_p_alive_use_day_periods() -> None:
    st = _customer()
    assert history(st) == (3, 20, 50)
    # repeat days 3 (103 + 103), 10 (110) and 20 (120)
    assert mean_repeat_spend_cny(st) == pytest.approx((206 + 110 + 120) / 3)
    assert customer_p_alive(st, RULES) == p_alive(3.0, 20.0, 50.0, RULES.bg_nbd)


def test_clv_rescaling_to_periods_is_exact_without_discounting() -> None:
    rules = replace(RULES, clv_discount_rate=0.0)
    st = _customer()
    days = rules.clv_period_days * rules.clv_horizon_periods
    want = expected_purchases(days, 3.0, 20.0, 50.0, rules.bg_nbd) * expected_avg_spend(
        3.0, mean_repeat_spend_cny(st), rules.gamma_gamma
    )
    assert customer_clv(st, rules) == pytest.approx(want, rel=1e-9)
    # discounting lowers it
    clv_disc = customer_clv(st, RULES)
    assert clv_disc is not None and 0 < clv_disc < want


def test_no_transactions_no_value_fields() -> None:
    st = run([bal(at(0), "5")])[0]
    assert history(st) is None
    assert customer_p_alive(st, RULES) is None and customer_clv(st, RULES) is None
