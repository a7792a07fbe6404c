"""Rolling transaction windows in event time: daily buckets with running totals.

Why daily buckets: RFM, channel mix and the digital-banking rule all look at "the last
N days", and a bucket per local calendar day makes an out-of-order event land exactly
where it belongs while keeping state bounded (at most N buckets). Money is integer fen
(CNY 0.01), so the sums are exact.

Why running totals: the rules only read the window's totals (count, sum, count per
channel), so those are kept up to date on add and on eviction and stored with the
state; no event re-sums the buckets.

Why the buckets are mostly bytes (format v4): a customer with months of history has a
bucket for most of the last 90 days, and the state is decoded and encoded for every
event of a customer the worker's cache does not hold -- with the buckets as Python
lists (v3) that cost grew with the customer's history, to over half of the core's time
at 90 days (docs/benchmark.md). But an event only touches *today's* bucket, and a new
day only drops the *oldest* ones. So the newest bucket is kept as plain fields, where
the day's transactions are counted, and every older ("closed") bucket is a few bytes
in one ``bytes`` object, oldest first, which is carried through decode and encode as
it is. A bucket is closed (encoded once, appended) when a later day opens, and evicted
(decoded once, cut off the front) when it leaves the window: each bucket costs one
encode and one decode in its life, whatever the number of events. Only a transaction
for an earlier day than the newest bucket (a late event) rebuilds the buckets.

A closed bucket is: one byte ``g << 6 | mask`` -- ``mask`` the channels used that
day (bit i = CHANNELS[i]), ``g`` the days since the previous closed bucket (0 for the
first one, whose day is ``base``; 3 means "more: an unsigned LEB128 varint follows");
then the count of each channel in ``mask``, one nibble each, two to a byte, low
nibble first (15 means "15 plus a varint that follows the nibbles"); then ``sum_fen``
as a varint. A day with two channels used up to 14 times each and a sum under 20,000
CNY takes 5 bytes. The layout is canonical: the same buckets give the same bytes
however they came about.
"""

from __future__ import annotations

import msgspec

from schemas.events import CHANNELS

N_CHANNELS = len(CHANNELS)
CHANNEL_INDEX = {c: i for i, c in enumerate(CHANNELS)}
_CH_BITS = 3
_CH_MASK = (1 << _CH_BITS) - 1
_ONE = 1 << _CH_BITS  # +1 transaction in a packed entry
assert N_CHANNELS <= 6  # a closed bucket's channel mask is 6 bits
#: channel mask -> the channels in it, ascending
_MASK_CHANNELS = tuple(
    tuple(ch for ch in range(N_CHANNELS) if m >> ch & 1) for m in range(1 << N_CHANNELS)
)


def _zero_channels() -> list[int]:
    return [0] * N_CHANNELS


class DailyWindows(msgspec.Struct, array_like=True, gc=False, forbid_unknown_fields=True):
    """Daily buckets ``[sum_fen, count << 3 | channel, ...]`` over the last N days.

    Fields (also the serialized layout, in this order): the window totals ``count``,
    ``sum_fen``, ``channels``; the newest bucket ``day``, ``day_sum``, ``day_entries``
    (no bucket at all when ``day_entries`` is empty); the closed buckets ``closed``
    (see the module doc), the oldest of them on day ``base``, the newest on ``last``.
    """

    count: int = 0
    sum_fen: int = 0
    channels: list[int] = msgspec.field(default_factory=_zero_channels)
    day: int = 0
    day_sum: int = 0
    day_entries: list[int] = msgspec.field(default_factory=list)
    base: int = 0
    last: int = 0
    closed: bytes = b""

    def __post_init__(self) -> None:
        if len(self.channels) != N_CHANNELS:
            raise ValueError(f"windows: {len(self.channels)} channel totals, not {N_CHANNELS}")

    def add(self, day: int, fen: int, channel: int) -> bool:
        """Count one transaction of ``fen`` on ``channel`` (index into CHANNELS) on
        ``day``; returns whether ``day`` had no bucket before."""
        self.count += 1
        self.sum_fen += fen
        self.channels[channel] += 1
        entries = self.day_entries
        if day == self.day and entries:
            self.day_sum += fen
            for j in range(len(entries)):
                if entries[j] & _CH_MASK == channel:
                    entries[j] += _ONE
                    break
            else:
                entries.append(_ONE | channel)
            return False
        if not entries or day > self.day:
            if entries:  # close the newest bucket: it is history now
                self._close()
            self.day = day
            self.day_sum = fen
            self.day_entries = [_ONE | channel]
            return True
        # a late event, for a day before the newest bucket: rebuild (rare)
        buckets = self.buckets
        b = buckets.get(day)
        new = b is None
        if b is None:
            buckets[day] = [fen, _ONE | channel]
        else:
            b[0] += fen
            for j in range(1, len(b)):
                if b[j] & _CH_MASK == channel:
                    b[j] += _ONE
                    break
            else:
                b.append(_ONE | channel)
        self._rebuild(buckets)
        return new

    def _close(self) -> None:
        """Append the newest bucket to the closed ones."""
        out = bytearray(self.closed)
        if not out:
            self.base = self.day
        gap = self.day - (self.last if self.closed else self.base)
        _put_bucket(out, gap, self.day_sum, self.day_entries)
        self.closed = bytes(out)
        self.last = self.day

    def evict_through(self, last_dropped_day: int) -> None:
        """Drop every bucket with day <= ``last_dropped_day`` and take it off the totals."""
        if not self.day_entries:
            return
        closed = self.closed
        if closed:
            day = self.base  # the oldest closed bucket's day (its gap is 0)
            if day > last_dropped_day:
                return  # it stays, and so do all the newer ones
            channels = self.channels
            end = len(closed)
            pos = 0
            while True:
                _gap, fen, counts, pos = _get_bucket(closed, pos)  # the bucket on ``day``
                self.sum_fen -= fen
                for ch, n in counts:
                    channels[ch] -= n
                    self.count -= n
                if pos == end:
                    self.closed = b""
                    self.base = self.last = 0
                    break
                head = closed[pos]
                gap, after_gap = (head >> 6, pos + 1) if head < 0xC0 else _get(closed, pos + 1)
                day += gap
                if day > last_dropped_day:  # the new oldest: its gap becomes 0
                    self.closed = bytes((head & 0x3F,)) + closed[after_gap:]
                    self.base = day
                    return  # and the newest bucket is newer still
        if self.day <= last_dropped_day:
            self.sum_fen -= self.day_sum
            for e in self.day_entries:
                n = e >> _CH_BITS
                self.channels[e & _CH_MASK] -= n
                self.count -= n
            self.day_sum = 0
            self.day_entries = []
            self.day = self.base = self.last = 0

    # ------------------------------------------------------------------ reading

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

    @property
    def buckets(self) -> dict[int, list[int]]:
        """Every bucket as ``day -> [sum_fen, count << 3 | channel, ...]`` in day order:
        a decoded copy (changing it changes nothing), for inspection and tests."""
        out: dict[int, list[int]] = {}
        closed = self.closed
        pos, end, day = 0, len(closed), self.base
        while pos < end:
            gap, fen, counts, pos = _get_bucket(closed, pos)
            day += gap
            out[day] = [fen, *(n << _CH_BITS | ch for ch, n in counts)]
        if self.day_entries:
            out[self.day] = [self.day_sum, *self.day_entries]
        return out

    @property
    def min_day(self) -> int | None:
        """The oldest bucket's day (None when there is no bucket)."""
        if self.closed:
            return self.base
        return self.day if self.day_entries else None

    def day_channels(self, day: int) -> list[int]:
        """Transaction count per channel on ``day`` (all zero if no bucket)."""
        out = [0] * N_CHANNELS
        for packed in self.buckets.get(day, [0])[1:]:
            out[packed & _CH_MASK] += packed >> _CH_BITS
        return out

    # ------------------------------------------------------------------ building

    @classmethod
    def from_buckets(cls, buckets: dict[int, list[int]]) -> DailyWindows:
        """Windows holding exactly these buckets (``day -> [sum_fen, packed...]``)."""
        w = cls()
        w._rebuild({d: list(b) for d, b in buckets.items()})
        return w

    def _rebuild(self, buckets: dict[int, list[int]]) -> None:
        """Make this hold exactly ``buckets`` (consumed), totals recounted."""
        days = sorted(buckets)
        channels = [0] * N_CHANNELS
        count = sum_fen = 0
        for b in buckets.values():
            sum_fen += b[0]
            for j in range(1, len(b)):
                n = b[j] >> _CH_BITS
                channels[b[j] & _CH_MASK] += n
                count += n
        self.count, self.sum_fen, self.channels = count, sum_fen, channels
        self.closed = b""
        self.day_entries = []
        self.day = self.day_sum = self.base = self.last = 0
        for d in days:
            if self.day_entries:
                self._close()
            b = buckets[d]
            self.day, self.day_sum, self.day_entries = d, b[0], b[1:]

    @classmethod
    def from_v3(cls, rows: list[list[int]], dense: bool = False) -> DailyWindows:
        """Format v2/v3 rows ``[[day delta, sum_fen, packed...], ...]`` (first day
        absolute); ``dense``: the v1 rows ``[absolute day, sum_fen, count per channel]``."""
        buckets: dict[int, list[int]] = {}
        d = 0
        for row in rows:
            if dense:
                d = int(row[0])
                b = [int(row[1])] + [int(n) << _CH_BITS | i for i, n in enumerate(row[2:]) if n]
            else:
                d += int(row[0])
                b = [int(x) for x in row[1:]]
            buckets[d] = b
        return cls.from_buckets(buckets)

    def copy(self) -> DailyWindows:
        w = DailyWindows(
            self.count,
            self.sum_fen,
            self.channels.copy(),
            self.day,
            self.day_sum,
            self.day_entries.copy(),
            self.base,
            self.last,
            self.closed,
        )
        return w


def _put_bucket(out: bytearray, gap: int, fen: int, entries: list[int]) -> None:
    """Append one closed bucket (see the module doc)."""
    mask = 0
    counts = [0] * N_CHANNELS
    for e in entries:
        mask |= 1 << (e & _CH_MASK)
        counts[e & _CH_MASK] += e >> _CH_BITS
    used = [counts[ch] for ch in _MASK_CHANNELS[mask]]
    out.append((gap if gap < 3 else 3) << 6 | mask)
    if gap >= 3:
        _put(out, gap)
    for i in range(0, len(used), 2):
        lo = used[i] if used[i] < 15 else 15
        hi = (used[i + 1] if used[i + 1] < 15 else 15) if i + 1 < len(used) else 0
        out.append(hi << 4 | lo)
    for n in used:
        if n >= 15:
            _put(out, n - 15)
    _put(out, fen)


def _get_bucket(buf: bytes, pos: int) -> tuple[int, int, list[tuple[int, int]], int]:
    """(gap, sum_fen, [(channel, count), ...], position after) of the bucket at ``pos``."""
    head = buf[pos]
    pos += 1
    gap = head >> 6
    if gap == 3:
        gap, pos = _get(buf, pos)
    chans = _MASK_CHANNELS[head & 0x3F]
    counts: list[int] = []
    for i in range(0, len(chans), 2):
        b = buf[pos]
        pos += 1
        counts.append(b & 0xF)
        if i + 1 < len(chans):
            counts.append(b >> 4)
    for i, n in enumerate(counts):
        if n == 15:
            more, pos = _get(buf, pos)
            counts[i] = 15 + more
    fen, pos = _get(buf, pos)
    return gap, fen, list(zip(chans, counts, strict=True)), pos


def _put(out: bytearray, x: int) -> None:
    """Append ``x`` (>= 0) as an unsigned LEB128 varint."""
    if x < 0:
        raise ValueError(f"windows: cannot encode a negative amount ({x})")
    while x >= 0x80:
        out.append(x & 0x7F | 0x80)
        x >>= 7
    out.append(x)


def _get(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    x = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = buf[pos]
        x |= (b & 0x7F) << shift
        if b < 0x80:
            return x, pos + 1
        shift += 7
