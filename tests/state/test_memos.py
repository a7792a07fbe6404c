"""Memoised and fast paths in the core give exactly what the plain computations give."""

from __future__ import annotations

import base64
import random
import struct

import orjson

from state.customer import CustomerState
from state.windows import CHANNELS, DailyWindows

_AGE_MAX = 0xFFFF


def _v3_dump_seen(seen: dict[int, int], today: int) -> str:
    """The v3 code's dedup encoder (n 8-byte keys, then n 2-byte ages, base64)."""
    ages = [min(max(today - d, 0), _AGE_MAX) for d in seen.values()]
    return base64.b64encode(struct.pack(f">{len(seen)}Q{len(seen)}H", *seen, *ages)).decode()


def test_v3_dedup_set_loads_in_fifo_order_with_clamped_ages_and_round_trips() -> None:
    rnd = random.Random(2)
    for n in (1, 2, 5, 256):
        today = 20_000
        seen = {
            rnd.getrandbits(64): today - rnd.choice([0, 1, 3, -2, _AGE_MAX + 5]) for _ in range(n)
        }
        v3 = orjson.dumps({"v": 3, "c": "x", "d": today, "s": _v3_dump_seen(seen, today)})
        st = CustomerState.from_bytes(v3)
        assert list(st.seen) == list(seen)  # FIFO order kept
        for key, day in seen.items():
            assert st.seen[key] == today - min(max(today - day, 0), _AGE_MAX)
            assert st.has_seen(key)
        assert CustomerState.from_bytes(st.to_bytes()).seen == st.seen


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
