"""Watching the cross-topic order contract: does each input partition arrive in event-time
order?

The worker merges a partition's input topics by event time, taking the earliest *head*
of each (streams/pipeline/aligner.py). That gives every customer's events in event-time
order only if each input partition is itself produced in event-time order, as live
traffic is (docs/topics.md, "Order"). A partition that goes back in time -- a
per-customer backfill: one customer's whole history, then the next one's -- defeats
the merge, and no waiting can repair it. This counts such records, per input
partition, so an operator sees it (``tierstream_input_time_regressions_total``):
a record counts when its event time is more than ``tolerance_ms`` behind the highest
event time seen before it on its partition (the partition's *stream time*; Kafka
Streams counts its "out-of-order" records the same way). The tolerance absorbs the
small disorder of several producers writing one partition.

Pure bookkeeping: the worker's loop feeds it every decoded input record in offset
order and forgets a partition when it is revoked or assigned (its next records may
start again from an older committed offset).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Default tolerance: disorder within a minute (concurrent producers, batching) is not
#: counted; a backfill goes back by days.
DEFAULT_TOLERANCE_MS = 60_000


class EventTimeRegressions:
    """Per (topic, partition): stream time, and regressions counted since ``take``."""

    __slots__ = ("_counts", "_stream_time", "tolerance_ms")

    def __init__(self, tolerance_ms: int = DEFAULT_TOLERANCE_MS) -> None:
        if tolerance_ms < 0:
            raise ValueError(f"the tolerance must be >= 0 ms, got {tolerance_ms}")
        self.tolerance_ms = tolerance_ms
        self._stream_time: dict[tuple[str, int], int] = {}
        self._counts: dict[tuple[str, int], int] = {}

    def observe(self, topic: str, partition: int, ts: int) -> bool:
        """One record of the partition, in offset order; True if it went back in time
        by more than the tolerance."""
        tp = (topic, partition)
        high = self._stream_time.get(tp)
        if high is None or ts > high:
            self._stream_time[tp] = ts
            return False
        if ts < high - self.tolerance_ms:
            self._counts[tp] = self._counts.get(tp, 0) + 1
            return True
        return False

    def take(self) -> dict[tuple[str, int], int]:
        """Regressions counted since the last call, per (topic, partition)."""
        counts, self._counts = self._counts, {}
        return counts

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop the stream time of these (topic, partition)s."""
        for tp in partitions:
            self._stream_time.pop(tp, None)
