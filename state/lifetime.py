"""Customer-value inputs from the state: BG/NBD and Gamma-Gamma at decision time.

Why here and not in state.value: state.value is the textbook maths on plain numbers;
this module knows how the state encodes them. Periods are local days: x = distinct
transaction days after the first, t_x = last minus first transaction day, T = the
customer's "today" (day of the newest event) minus the first transaction day. The mean
repeat spend is the exact CNY sum of repeat days divided by x (spend per repeat day).
"""

from __future__ import annotations

import functools

from state.customer import CustomerState
from state.rules import Rules
from state.value import BgNbdParams, discounted_purchases, expected_avg_spend, p_alive


def history(state: CustomerState) -> tuple[int, int, int] | None:
    """(x, t_x, T) in days, or None when the customer has no counted transaction."""
    if state.tx_days == 0:
        return None
    x = state.tx_days - 1
    t_x = state.tx_last_day - state.tx_first_day
    big_t = max(state.day - state.tx_first_day, t_x)
    return x, t_x, big_t


def count_transaction(state: CustomerState, day: int, fen: int, new_day: bool) -> None:
    """Keep the statistics ``history`` reads over a counted transaction of ``fen`` on
    local ``day`` (``new_day``: the first counted on that day); called by the core."""
    state.tx_total_fen += fen
    if new_day:
        if state.tx_days == 0:
            state.tx_first_day = state.tx_last_day = day
            state.tx_first_fen = fen
        else:
            if day < state.tx_first_day:  # out of order: the old first day is a repeat
                state.tx_first_day = day
                state.tx_first_fen = fen
            if day > state.tx_last_day:
                state.tx_last_day = day
        state.tx_days += 1
    elif day == state.tx_first_day:
        state.tx_first_fen += fen


def mean_repeat_spend_cny(state: CustomerState) -> float:
    """Mean spend per repeat day in CNY (0.0 with no repeat day). A statistic, so float."""
    x = state.tx_days - 1
    if x <= 0:
        return 0.0
    return (state.tx_total_fen - state.tx_first_fen) / x / 100.0


def customer_p_alive(state: CustomerState, rules: Rules) -> float | None:
    h = history(state)
    if h is None:
        return None
    return p_alive(float(h[0]), float(h[1]), float(h[2]), rules.bg_nbd)


def customer_clv(state: CustomerState, rules: Rules) -> float | None:
    """CLV in CNY over ``horizon_periods`` periods of ``period_days`` days.

    The BG/NBD model is rescaled to the period exactly (alpha is a time scale: alpha per
    day / P = alpha per P-day period), so discounting is per period while the fitted
    parameters stay in days -- and a year is 4 quarterly terms, not 365 daily ones
    (each term is a hypergeometric series evaluation in state.value).
    """
    h = history(state)
    if h is None:
        return None
    per = float(rules.clv_period_days)
    x = float(h[0])
    spend = expected_avg_spend(x, mean_repeat_spend_cny(state), rules.gamma_gamma)
    purchases = _purchases_memo(
        x,
        h[1] / per,
        h[2] / per,
        _per_period(rules.bg_nbd, per),
        rules.clv_horizon_periods,
        rules.clv_discount_rate,
    )
    return purchases * spend  # = state.value.clv(...), the same float operations


#: (id, the rules' parameters, period) -> the parameters rescaled to the period. The
#: parameters are immutable and held here, so an id cannot be reused while cached.
_PER_PERIOD: dict[int, tuple[BgNbdParams, float, BgNbdParams]] = {}


def _per_period(bg: BgNbdParams, per: float) -> BgNbdParams:
    """``bg`` with alpha per ``per``-day period (built once per rules, not per profile:
    the constructor validates every field)."""
    hit = _PER_PERIOD.get(id(bg))
    if hit is not None and hit[0] is bg and hit[1] == per:
        return hit[2]
    scaled = BgNbdParams(bg.r, bg.alpha / per, bg.a, bg.b)
    if len(_PER_PERIOD) >= 64:
        _PER_PERIOD.clear()
    _PER_PERIOD[id(bg)] = (bg, per, scaled)
    return scaled


#: CLV = discounted expected purchases x expected spend. The purchases part holds all
#: the cost (a hypergeometric series per period) and depends only on (x, t_x, T) in
#: days, which change at most once per customer per day -- and many customers share
#: them -- while the mean spend changes with every transaction and the profile is
#: rebuilt after every batch that touches the customer. So the memo is keyed without
#: the spend (keying on it too hit ~never in steady state). Pure: a hit returns exactly
#: what a fresh evaluation would.
_purchases_memo = functools.lru_cache(maxsize=65536)(discounted_purchases)
