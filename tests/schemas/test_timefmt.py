"""schemas.timefmt: the contracts' timestamp format, fast path against strftime."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from schemas.timefmt import format_ts_utc


def _reference_format_ts_utc(ts_ms: int) -> str:
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def test_format_ts_utc_matches_strftime() -> None:
    rnd = random.Random(1)
    edges = [0, -1, 999, 1000, -1000, -1001, -62135596800000, 253402300799999]
    values = edges + [rnd.randrange(-62135596800000, 253402300800000) for _ in range(20000)]
    values += [1767196800000 + rnd.randrange(0, 10**9) for _ in range(20000)]
    for ts in values:
        expected = _reference_format_ts_utc(ts)
        assert format_ts_utc(ts) == expected, ts
        assert format_ts_utc(ts) == expected, ts  # from the memo


@pytest.mark.parametrize("ts", [-62135596800001, 253402300800000])
def test_format_ts_utc_out_of_range_still_raises(ts: int) -> None:
    with pytest.raises(ValueError):
        _reference_format_ts_utc(ts)
    with pytest.raises(ValueError):
        format_ts_utc(ts)
