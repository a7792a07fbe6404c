"""Rolling transaction windows in event time: sparse daily buckets with running totals.

Why daily buckets: RFM, channel mix and the digital-banking rule all look at "the last
N days", and a bucket per local calendar day makes an out-of-order event land exactly
where it belongs while keeping state bounded (at most N buckets, usually far fewer).
Why running totals: the hot path must not re-sum 90 buckets per event, so the window
totals are updated on add and on eviction (which happens at most once per new day).
Money is integer fen (CNY 0.01), so the sums are exact.

Why the packed bucket layout ``[sum_fen, count << 3 | channel, ...]`` (one entry per
channel used that day): most days use one or two channels, so the bucket is 2-3 ints,
and it is also the serialized form -- state is encoded and decoded for every touched
customer in every batch, so that must not loop over every channel of every day.
"""

from __future__ import annotations

from schemas.events import CHANNELS

N_CHANNELS = len(CHANNELS)
CHANNEL_INDEX = {c: i for i, c in enumerate(CHANNELS)}
_NO_MIN = 2**62
_CH_BITS = 3
_CH_MASK = (1 << _CH_BITS) - 1
_ONE = 1 << _CH_BITS  # +1 transaction in a packed entry
assert N_CHANNELS <= _CH_MASK + 1


class DailyWindows:
    """Daily buckets ``day -> [sum_fen, count << 3 | channel, ...]`` over the last N days."""

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
            self.buckets[day] = [fen, _ONE | channel]
            if day < self.min_day:
                self.min_day = day
        else:
            b[0] += fen
            for j in range(1, len(b)):
                if b[j] & _CH_MASK == channel:
                    b[j] += _ONE
                    break
            else:
                b.append(_ONE | channel)
        self.count += 1
        self.sum_fen += fen
        self.channels[channel] += 1

    def day_channels(self, day: int) -> list[int]:
        """Transaction count per channel on ``day`` (all zero if no bucket)."""
        out = [0] * N_CHANNELS
        for packed in self.buckets.get(day, [0])[1:]:
            out[packed & _CH_MASK] += packed >> _CH_BITS
        return out

    def evict_through(self, last_dropped_day: int) -> None:
        """Drop every bucket with day <= ``last_dropped_day`` and take it off the totals."""
        if self.min_day > last_dropped_day:
            return
        buckets = self.buckets
        if last_dropped_day - self.min_day < len(buckets):
            old = [d for d in range(self.min_day, last_dropped_day + 1) if d in buckets]
        else:
            old = [d for d in buckets if d <= last_dropped_day]
        channels = self.channels
        for d in old:
            b = buckets.pop(d)
            self.sum_fen -= b[0]
            for j in range(1, len(b)):
                n = b[j] >> _CH_BITS
                channels[b[j] & _CH_MASK] -= n
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
        # the first channel with the highest count, if that count is positive
        channels = self.channels
        top = max(channels)
        return CHANNELS[channels.index(top)] if top > 0 else ""

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

    # --- serialization: [[day, sum_fen, packed...], ...] sorted by day, the day
    # --- delta-encoded (first row absolute).

    def dump(self) -> list[list[int]]:
        out: list[list[int]] = []
        prev = 0
        buckets = self.buckets
        for d in sorted(buckets):
            out.append([d - prev, *buckets[d]])
            prev = d
        return out

    @classmethod
    def load(cls, rows: list[list[int]], dense: bool = False) -> DailyWindows:
        """``dense``: the v1 layout [absolute day, sum_fen, count per channel...]."""
        w = cls()
        d = 0
        buckets = w.buckets
        channels = w.channels
        sum_fen = 0
        count = 0
        for row in rows:
            if dense:
                d = row[0]
                b = [row[1]] + [n << _CH_BITS | i for i, n in enumerate(row[2:]) if n]
            else:
                d += row[0]
                b = row[1:]
            buckets[d] = b
            sum_fen += b[0]
            for j in range(1, len(b)):
                n = b[j] >> _CH_BITS
                channels[b[j] & _CH_MASK] += n
                count += n
        w.sum_fen = sum_fen
        w.count = count
        if buckets:
            w.min_day = min(buckets)
        return w

    def copy(self) -> DailyWindows:
        w = DailyWindows()
        w.buckets = {d: b.copy() for d, b in self.buckets.items()}
        w.min_day = self.min_day
        w.count = self.count
        w.sum_fen = self.sum_fen
        w.channels = self.channels.copy()
        return w
