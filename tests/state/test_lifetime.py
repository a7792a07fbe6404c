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


def test_repeat_amounts_below_one_fen_give_a_value_not_an_error() -> None:
    """Found by fuzzing through a worker: amounts under a fen pass the decoder (> 0)
    and count as repeat days with 0 fen of spend; the Gamma-Gamma estimate raised for
    a mean of 0, so every later event of the customer was dead-lettered ``internal``.
    It now takes the limit as the mean goes to 0, between no history and a small one."""
    from state.profile import profile_fields

    st = run(
        [tx(at(0), "5"), tx(at(3), "0.001", event_id="e2"), tx(at(5), "0.004", event_id="e3")]
    )[0]
    assert st.tx_days == 3 and mean_repeat_spend_cny(st) == 0.0
    clv0 = customer_clv(st, RULES)
    assert clv0 is not None and clv0 > 0
    assert profile_fields(st, RULES)["clv"]  # the profile is written
    one_fen = run(
        [tx(at(0), "5"), tx(at(3), "0.01", event_id="e2"), tx(at(5), "0.01", event_id="e3")]
    )[0]
    clv1 = customer_clv(one_fen, RULES)
    assert clv1 is not None and clv0 < clv1 < clv0 * 1.001  # continuous at 0
