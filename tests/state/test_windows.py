"""DailyWindows: running totals stay equal to a recount through adds and evictions, and
the buckets (newest as fields, older ones as bytes) stay exactly a model's."""

from __future__ import annotations

import msgspec
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


@settings(max_examples=300, deadline=None)
@given(ops)
def test_totals_match_recount_and_serialization_round_trips(seq) -> None:  # type: ignore[no-untyped-def]
    w = DailyWindows()
    model: dict[int, list[int]] = {}  # day -> [sum, count per channel]
    for op, day, fen, ch in seq:
        if op == "add":
            new = w.add(day, fen, ch)
            assert new == (day not in model)
            m = model.setdefault(day, [0] * (N_CHANNELS + 1))
            m[0] += fen
            m[ch + 1] += 1
        else:
            w.evict_through(day)
            model = {d: m for d, m in model.items() if d > day}
            assert all(d > day for d in w.buckets)
        assert {d: [b[0], *w.day_channels(d)] for d, b in w.buckets.items()} == model
        assert list(w.buckets) == sorted(model)
        assert (w.count, w.sum_fen, w.channels) == recount(w)
        assert w.min_day == min(w.buckets, default=None)
        back = msgspec.msgpack.decode(msgspec.msgpack.encode(w), type=DailyWindows)
        assert back.buckets == w.buckets
        assert (back.count, back.sum_fen, back.channels) == (w.count, w.sum_fen, w.channels)
        # the same buckets built in one go give the same layout, byte for byte
        assert msgspec.msgpack.encode(DailyWindows.from_buckets(w.buckets)) == (
            msgspec.msgpack.encode(w)
        )


def test_a_day_costs_a_few_bytes_and_old_days_leave_from_the_front() -> None:
    w = DailyWindows()
    for day in range(100, 190):
        w.add(day, 12_345, 0)
        w.add(day, 500, 3)
    assert len(w.closed) == 89 * 4  # gap + channels, two count nibbles, sum (2 bytes)
    w.evict_through(99 + 10)
    assert w.min_day == 110 and w.count == 2 * 80 and w.sum_fen == 80 * 12_845
    assert len(w.closed) == 79 * 4
    w.evict_through(200)
    assert w.buckets == {} and w.count == 0 and w.channels == [0] * N_CHANNELS


def test_long_gaps_and_large_counts_survive_closing_and_eviction() -> None:
    w = DailyWindows()
    model: dict[int, list[int]] = {}
    for i, day in enumerate([3, 4, 9, 30, 31, 400, 1000]):
        for _ in range(i * 11 + 1):  # up to 67 transactions a day on one channel
            w.add(day, 10**9, i % N_CHANNELS)
        w.add(day, 1, (i + 1) % N_CHANNELS)
        model[day] = [0] * N_CHANNELS
        model[day][i % N_CHANNELS] += i * 11 + 1
        model[day][(i + 1) % N_CHANNELS] += 1
    assert {d: w.day_channels(d) for d in w.buckets} == model
    for cut in (3, 8, 30, 399, 999, 1000):
        w.evict_through(cut)
        model = {d: m for d, m in model.items() if d > cut}
        assert {d: w.day_channels(d) for d in w.buckets} == model
        assert w.count == sum(map(sum, model.values()))
        assert msgspec.msgpack.encode(DailyWindows.from_buckets(w.buckets)) == (
            msgspec.msgpack.encode(w)
        )


def test_v3_rows_load() -> None:
    w = DailyWindows.from_v3([[20455, 12345, 8, 18], [2, 700, 9]])
    assert w.buckets == {20455: [12345, 8, 18], 20457: [700, 9]}
    assert (w.count, w.sum_fen, w.channels) == (4, 13045, [1, 1, 2, 0, 0, 0])
    dense = DailyWindows.from_v3([[20455, 12345, 1, 0, 0, 0, 1, 0]], dense=True)
    assert dense.buckets == {20455: [12345, 8, 1 << 3 | 4]}


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
