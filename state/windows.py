"""Rolling transaction windows in event time: sparse daily buckets with running totals.

Why daily buckets: RFM, channel mix and the digital-banking rule all look at "the last
N days", and a bucket per local calendar day makes an out-of-order event land exactly
where it belongs while keeping state bounded (at most N buckets, usually far fewer).
Why running totals: the hot path must not re-sum 90 buckets per event, so the window
totals are updated on add and on eviction (which happens at most once per new day).
Money is integer fen (CNY 0.01), so the sums are exact.
"""

from __future__ import annotations

from schemas.events import CHANNELS

N_CHANNELS = len(CHANNELS)
CHANNEL_INDEX = {c: i for i, c in enumerate(CHANNELS)}
_NO_MIN = 2**62


class DailyWindows:
    """Daily buckets ``day -> [sum_fen, count per channel...]`` over the last N days.

    A bucket's transaction count is the sum of its channel counts (every transaction has
    exactly one channel), so it is not stored twice.
    """

    __slots__ = ("buckets", "channels", "count", "min_day", "sum_fen")

    def __init__(self) -> None:
        self.buckets: dict[int, list[int]] = {}
        self.min_day = _NO_MIN  # oldest bucket day: eviction is free until it is due
        self.count = 0
        self.sum_fen = 0
        self.channels = [0] * N_CHANNELS

    def add(self, day: int, fen: int, channel: int) -> None:
        """Count one transaction of ``fen`` on ``channel`` (index into CHANNELS)."""
        b = self.buckets.get(day)
        if b is None:
            b = self.buckets[day] = [0] * (N_CHANNELS + 1)
            if day < self.min_day:
                self.min_day = day
        b[0] += fen
        b[channel + 1] += 1
        self.count += 1
        self.sum_fen += fen
        self.channels[channel] += 1

    def evict_through(self, last_dropped_day: int) -> None:
        """Drop every bucket with day <= ``last_dropped_day`` and take it off the totals."""
        if self.min_day > last_dropped_day:
            return
        buckets = self.buckets
        if last_dropped_day - self.min_day < len(buckets):
            old = [d for d in range(self.min_day, last_dropped_day + 1) if d in buckets]
        else:
            old = [d for d in buckets if d <= last_dropped_day]
        for d in old:
            b = buckets.pop(d)
            self.sum_fen -= b[0]
            for i in range(N_CHANNELS):
                n = b[i + 1]
                self.channels[i] -= n
                self.count -= n
        # new oldest day: usually the next day (active customers), else a full scan
        if not buckets:
            self.min_day = _NO_MIN
            return
        d = last_dropped_day + 1
        for _ in range(4):
            if d in buckets:
                self.min_day = d
                return
            d += 1
        self.min_day = min(buckets)

    def preferred_channel(self) -> str:
        """The most used channel in the window ("" if none); ties go to CHANNELS order."""
        best = -1
        best_n = 0
        for i, n in enumerate(self.channels):
            if n > best_n:
                best, best_n = i, n
        return CHANNELS[best] if best >= 0 else ""

    def channel_shares(self) -> dict[str, float]:
        """Share of window transactions per channel (empty dict when no transactions)."""
        if self.count == 0:
            return {}
        return {c: self.channels[i] / self.count for i, c in enumerate(CHANNELS)}

    def average_fen(self) -> int:
        """Average transaction amount in the window, fen, half-up; 0 when empty."""
        if self.count == 0:
            return 0
        q, r = divmod(self.sum_fen, self.count)
        return q + (1 if 2 * r >= self.count else 0)

    # --- serialization: [[day, sum_fen, ch0, ch1, ...], ...] sorted by day, the day
    # --- delta-encoded (first row absolute), trailing zero counts cut

    def dump(self) -> list[list[int]]:
        out: list[list[int]] = []
        prev = 0
        for d in sorted(self.buckets):
            b = self.buckets[d]
            end = len(b)
            while end > 1 and b[end - 1] == 0:
                end -= 1
            out.append([d - prev, *b[:end]])
            prev = d
        return out

    @classmethod
    def load(cls, rows: list[list[int]]) -> DailyWindows:
        w = cls()
        d = 0
        for row in rows:
            d += row[0]
            b = [0] * (N_CHANNELS + 1)
            vals = row[1:]
            b[: len(vals)] = vals
            w.buckets[d] = b
            w.min_day = min(w.min_day, d)
            w.sum_fen += b[0]
            for i in range(N_CHANNELS):
                w.channels[i] += b[i + 1]
                w.count += b[i + 1]
        return w

    def copy(self) -> DailyWindows:
        w = DailyWindows()
        w.buckets = {d: b.copy() for d, b in self.buckets.items()}
        w.min_day = self.min_day
        w.count = self.count
        w.sum_fen = self.sum_fen
        w.channels = self.channels.copy()
        return w
