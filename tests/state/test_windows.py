"""DailyWindows: running totals stay equal to a recount through adds and evictions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from state.windows import N_CHANNELS, DailyWindows


def recount(w: DailyWindows) -> tuple[int, int, list[int]]:
    per_day = [w.day_channels(d) for d in w.buckets]
    chans = [sum(c[i] for c in per_day) for i in range(N_CHANNELS)]
    return sum(chans), sum(b[0] for b in w.buckets.values()), chans


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 200), st.integers(1, 10**9), st.integers(0, 5)),
        st.tuples(st.just("evict"), st.integers(-5, 210), st.just(0), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_totals_match_recount_and_dump_round_trips(seq) -> None:  # type: ignore[no-untyped-def]
    w = DailyWindows()
    model: dict[int, list[int]] = {}  # day -> [sum, count per channel]
    for op, day, fen, ch in seq:
        if op == "add":
            w.add(day, fen, ch)
            m = model.setdefault(day, [0] * (N_CHANNELS + 1))
            m[0] += fen
            m[ch + 1] += 1
        else:
            w.evict_through(day)
            model = {d: m for d, m in model.items() if d > day}
            assert all(d > day for d in w.buckets)
        assert {d: [b[0], *w.day_channels(d)] for d, b in w.buckets.items()} == model
        assert (w.count, w.sum_fen, w.channels) == recount(w)
        assert w.min_day == min(w.buckets, default=w.min_day)
    back = DailyWindows.load(w.dump())
    assert back.buckets == w.buckets
    assert (back.count, back.sum_fen, back.channels) == (w.count, w.sum_fen, w.channels)


def test_preferred_channel_and_shares() -> None:
    w = DailyWindows()
    assert w.preferred_channel() == "" and w.channel_shares() == {}
    w.add(1, 100, 2)  # branch
    w.add(1, 100, 0)  # mobile
    assert w.preferred_channel() == "mobile"  # tie -> CHANNELS order
    w.add(2, 100, 2)
    assert w.preferred_channel() == "branch"
    assert w.channel_shares()["branch"] == 2 / 3
    assert w.average_fen() == 100
