"""Decoded customer states kept between batches, so a hot customer is not re-read.

Why: in steady state nearly every event of a batch touches a different customer, and
reading one back costs a store lookup plus ``CustomerState.from_bytes`` — about a
quarter of the pure core's time per event on the benchmark's data (measured
2026-12-03). The state the batch leaves behind is already in memory, decoded; keeping
it skips both on the customer's next event.

The cache is a write-through view of the store, never a source of truth:

* Entries are put only for states the batch has just written (or read and left
  unchanged), after ``apply_ordered`` built their serialized form, and the worker
  stops (``_fatal``) if that batch's writes fail — so an entry always equals the
  bytes the store holds for its key.
* A partition's entries go when the worker gives the partition up, and again when
  it is assigned (its next state may come from another worker, through the
  changelog).
* Bounded by entry count, least recently used first out. A decoded state is about
  5.5 KB in memory on the benchmark's data (the dedup set's ints dominate), so the
  default 50,000 entries is about 275 MB.

``take`` removes the entry it returns: the batch owns (and mutates) the object, and
``put`` at the batch's end makes it the most recently used. A batch that fails
between the two leaves no half-applied object behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from state.customer import CustomerState

#: Entries kept by default: ~275 MB of decoded states (about 5.5 KB each).
DEFAULT_CAPACITY = 50_000


class StateCache:
    """Customer key -> (partition, decoded state), least recently used evicted first."""

    __slots__ = ("_entries", "capacity", "hits", "misses")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"state cache capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        # dict order is the recency order: take() pops, put() appends
        self._entries: dict[bytes, tuple[int, CustomerState]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, key: bytes) -> CustomerState | None:
        """The cached state of ``key`` (removed from the cache), or None on a miss."""
        entry = self._entries.pop(key, None)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        return entry[1]

    def put_all(self, states: Iterable[tuple[bytes, int, CustomerState]]) -> None:
        """Remember (key, partition, state) as the store now holds them; evict the
        least recently used beyond capacity."""
        if not self.capacity:
            return
        entries = self._entries
        for key, partition, st in states:
            entries.pop(key, None)
            entries[key] = (partition, st)
        excess = len(entries) - self.capacity
        for key in list(islice(entries, max(excess, 0))):
            del entries[key]

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget every entry of these partitions; returns how many went."""
        gone = set(partitions)
        if not gone or not self._entries:
            return 0
        keys = [k for k, (p, _st) in self._entries.items() if p in gone]
        for k in keys:
            del self._entries[k]
        return len(keys)

    def clear(self) -> None:
        self._entries.clear()
