"""Per-partition index of when each customer's next time trigger is due.

A tick for partition *p* at time *T* must cost in proportion to what is due, not to
the number of customers: the index is one min-heap of (due_ms, customer) per
partition, so an idle tick is a single peek at the heap's top.

Entries are lazy. A customer has at most one live entry (``_due``); when their next
due time moves *later* (a transaction pushes the dormancy deadline out) the old,
earlier entry stays and fires early: the core's ``fire_timers`` then finds nothing
due and the customer is indexed again at the new time. When it moves *earlier* (a
birthday entered on a profile) a new entry is pushed and the old one is skipped when
popped. So every event costs O(1) amortised here and no write is ever lost.

The index is derived state: the worker rebuilds a partition's heap from its table
the first time a tick for it arrives after an assignment (``has``/``rebuild``), and
forgets it when the partition is revoked. Events applied before that first tick are
indexed too (``update``), but do not count as the build: the customers stored before
them must still be read in, or their timers (and a rules version's re-tier) would
wait for their next event.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable


class DueIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, bytes]]] = {}
        self._due: dict[int, dict[bytes, int]] = {}
        #: partitions whose stored customers were read in (``rebuild``)
        self._built: set[int] = set()

    def has(self, partition: int) -> bool:
        """Whether the partition's stored customers were indexed since its assignment."""
        return partition in self._built

    def rebuild(
        self,
        partition: int,
        entries: Iterable[tuple[bytes, int | None]],
    ) -> int:
        """Index (key, due_ms) pairs for a partition, keeping entries already there
        (those come from this batch and are fresher than the stored states)."""
        heap = self._heaps.setdefault(partition, [])
        due = self._due.setdefault(partition, {})
        self._built.add(partition)
        n = 0
        for key, when in entries:
            if when is None or key in due:
                continue
            due[key] = when
            heap.append((when, key))
            n += 1
        heapq.heapify(heap)
        return n

    def update(self, partition: int, key: bytes, when: int | None) -> None:
        """Record a customer's next due time (None: nothing can fire)."""
        due = self._due.setdefault(partition, {})
        heap = self._heaps.setdefault(partition, [])
        current = due.get(key)
        if when is None:
            return  # a live earlier entry, if any, fires idle and is dropped then
        if current is not None and current <= when:
            return  # the earlier entry will wake the customer first
        due[key] = when
        heapq.heappush(heap, (when, key))

    def pop_due(self, partition: int, now_ms: int, limit: int | None = None) -> list[bytes]:
        """Customers whose indexed time is at or before ``now_ms`` (removed), at most
        ``limit`` of them (earliest first): a tick's budget, so that a timer that falls
        due for everyone at once (a rules version taking effect, a campaign start) is
        spread over ticks instead of stalling one batch. What is left stays due."""
        heap = self._heaps.get(partition)
        if not heap or heap[0][0] > now_ms:
            return []
        due = self._due[partition]
        out: list[bytes] = []
        while heap and heap[0][0] <= now_ms and (limit is None or len(out) < limit):
            when, key = heapq.heappop(heap)
            if due.get(key) == when:
                del due[key]
                out.append(key)
        return out

    def has_due(self, partition: int, now_ms: int) -> bool:
        """Whether some customer of the partition is due at or before ``now_ms`` (an
        entry a budget left behind; a stale lazy entry may also answer True)."""
        heap = self._heaps.get(partition)
        return bool(heap) and heap[0][0] <= now_ms  # type: ignore[index]

    def schedule(self, partition: int, keys: Iterable[bytes], when: int) -> int:
        """Make every customer in ``keys`` due at ``when`` at the latest (``update``
        for each: an earlier entry stays). Returns how many were given."""
        n = 0
        for key in keys:
            self.update(partition, key, when)
            n += 1
        return n

    def partitions(self) -> list[int]:
        """The partitions with entries (built, or an event applied since assignment)."""
        return list(self._heaps)

    def forget(self, partition: int, key: bytes) -> None:
        """Remove one customer (erased): its heap entry is skipped when it comes up."""
        due = self._due.get(partition)
        if due is not None:
            due.pop(key, None)

    def drop(self, partition: int) -> None:
        self._built.discard(partition)
        self._heaps.pop(partition, None)
        self._due.pop(partition, None)

    def size(self, partition: int | None = None) -> int:
        if partition is not None:
            return len(self._due.get(partition, {}))
        return sum(len(d) for d in self._due.values())


NextDue = Callable[[bytes], int | None]
