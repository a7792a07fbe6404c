"""Memoised and fast paths in the core give exactly what the plain computations give."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from state.customer import _AGE_MAX, _dump_seen, _load_seen
from state.decisions import format_ts
from state.windows import CHANNELS, DailyWindows


def _reference_format_ts(ts_ms: int) -> str:
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def test_format_ts_matches_strftime() -> None:
    rnd = random.Random(1)
    edges = [0, -1, 999, 1000, -1000, -1001, -62135596800000, 253402300799999]
    values = edges + [rnd.randrange(-62135596800000, 253402300800000) for _ in range(20000)]
    values += [1767196800000 + rnd.randrange(0, 10**9) for _ in range(20000)]
    for ts in values:
        expected = _reference_format_ts(ts)
        assert format_ts(ts) == expected, ts
        assert format_ts(ts) == expected, ts  # from the memo


@pytest.mark.parametrize("ts", [-62135596800001, 253402300800000])
def test_format_ts_out_of_range_still_raises(ts: int) -> None:
    with pytest.raises(ValueError):
        _reference_format_ts(ts)
    with pytest.raises(ValueError):
        format_ts(ts)


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
