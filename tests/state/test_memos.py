"""Memoised and fast paths in the core give exactly what the plain computations give."""

from __future__ import annotations

import random

from state.customer import _AGE_MAX, _dump_seen, _load_seen
from state.windows import CHANNELS, DailyWindows


def test_dedup_set_round_trip_and_clamping() -> None:
    rnd = random.Random(2)
    for n in (1, 2, 5, 256):
        today = 20_000
        seen = {
            rnd.getrandbits(64): today - rnd.choice([0, 1, 3, -2, _AGE_MAX + 5]) for _ in range(n)
        }
        back = _load_seen(_dump_seen(seen, today), today)
        assert list(back) == list(seen)  # FIFO order kept
        for key, day in seen.items():
            assert back[key] == today - min(max(today - day, 0), _AGE_MAX)


def test_preferred_channel_first_highest_count() -> None:
    w = DailyWindows()
    assert w.preferred_channel() == ""
    w.channels = [0, 3, 1, 3, 0, 0]
    assert w.preferred_channel() == CHANNELS[1]
    w.channels = [0, 0, 0, 0, 0, 2]
    assert w.preferred_channel() == CHANNELS[5]


def test_customer_clv_memo_is_exactly_the_plain_clv() -> None:
    """The memo holds only the spend-free part (discounted purchases); the result must
    be bit-for-bit what ``state.value.clv`` gives, whatever the spend."""
    from state.customer import CustomerState
    from state.lifetime import _per_period, customer_clv, history, mean_repeat_spend_cny
    from state.rules import load_rules
    from state.value import clv

    rules = load_rules()
    per = float(rules.clv_period_days)
    rnd = random.Random(3)
    for i in range(3000):
        st = CustomerState(f"c{i}")
        st.tx_first_day = 20_000 - rnd.randrange(0, 400)
        st.tx_days = rnd.randrange(1, 8)  # few distinct histories: the memo is hit
        st.tx_last_day = st.tx_first_day + rnd.randrange(0, 30) * (st.tx_days > 1)
        st.day = max(st.tx_last_day, 20_000 - rnd.randrange(0, 3))
        st.tx_first_fen = rnd.randrange(1, 10**6)
        st.tx_total_fen = st.tx_first_fen + rnd.randrange(1, 10**8) * (st.tx_days > 1)
        h = history(st)
        assert h is not None
        want = clv(
            float(h[0]),
            h[1] / per,
            h[2] / per,
            mean_repeat_spend_cny(st),
            _per_period(rules.bg_nbd, per),
            rules.gamma_gamma,
            rules.clv_horizon_periods,
            rules.clv_discount_rate,
        )
        assert customer_clv(st, rules) == want
