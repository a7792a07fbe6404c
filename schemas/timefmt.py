"""Timestamps as the contracts write them: RFC 3339, UTC, millisecond precision.

Every ``ts`` (and ``*_at``) field tierstream writes — tier changes, offers, alerts,
dead letters, ticks, Redis profiles — has the one shape
``YYYY-MM-DDTHH:MM:SS.mmmZ`` that the output schemas' ``ts`` pattern requires. It lives
in ``schemas`` because it is part of the contract, so the contracts (dead letters) and
the core (``state``) both take it from here and ``schemas`` depends on no other
project package. (The synthetic bank writes its *input* events in bank time instead:
streams/tools/simulator.py ``format_ts_bank_time``.)
"""

from __future__ import annotations

from datetime import UTC, datetime

#: format_ts_utc memo: epoch second -> "YYYY-MM-DDTHH:MM:SS." and UTC day -> "YYYY-MM-DD".
#: strftime costs ~3 µs and runs for every decision and every profile; both are pure
#: functions of the second / day, so a bounded dict lookup returns exactly what a fresh
#: evaluation would.
_TS_SECONDS: dict[int, str] = {}
_TS_DAYS: dict[int, str] = {}
_TS_CACHE_MAX = 16_384  # ~4.5 h of distinct seconds; a few MB at most


def _format_ts_slow(ts_ms: int) -> str:
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def format_ts_utc(ts_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with millisecond precision."""
    if type(ts_ms) is not int:
        return _format_ts_slow(ts_ms)
    sec, ms = divmod(ts_ms, 1000)
    prefix = _TS_SECONDS.get(sec)
    if prefix is None:
        # UTC has no leap seconds and no offset changes: the time of day is arithmetic
        # on the second, only the date needs the calendar.
        day, s = divmod(sec, 86_400)
        date_text = _TS_DAYS.get(day)
        if date_text is None:
            full = _format_ts_slow(ts_ms)  # raises for out-of-range times, as always
            date_text = full[: full.index("T")]  # %Y is not zero-padded below 1000
            if len(_TS_DAYS) >= _TS_CACHE_MAX:
                _TS_DAYS.clear()
            _TS_DAYS[day] = date_text
        prefix = f"{date_text}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}."
        if len(_TS_SECONDS) >= _TS_CACHE_MAX:
            _TS_SECONDS.clear()
        _TS_SECONDS[sec] = prefix
    return f"{prefix}{ms:03d}Z"
