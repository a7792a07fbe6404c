"""Customer states kept between batches, so a hot customer is not re-read from the store.

Why: in steady state nearly every event of a batch touches a different customer, and
reading one back means a store lookup (RocksDB through faust's table) plus
``CustomerState.from_bytes``. The bytes the batch has just written are at hand; keeping
them skips the lookup on the customer's next event.

Why the bytes and not the decoded state (since format v4, 2026-12-07): decoding a v4
state costs about 2 µs whatever the customer's history, while a decoded state is an
object tree about 4 times its serialized size (4.5 KB against 1.2 KB for a customer
with 90 days of history, docs/benchmark.md "History"; a v3 state was 25 KB decoded).
Holding the bytes makes an entry cost about its serialized size, so the same memory
holds ~4 times the customers, for ~2 µs per hit.

The cache is a write-through view of the store, never a source of truth:

* Entries are put only for states the batch has just written, with the very bytes
  written, and the worker stops (``_fatal``) if that batch's writes fail — so an entry
  always equals what the store holds for its key.
* A partition's entries go when the worker gives the partition up, and again when
  it is assigned (its next state may come from another worker, through the
  changelog).
* Bounded by entry count, least recently used first out (the default 50,000 entries
  is ~60 MB of states with 90 days of history).

``take`` removes the entry it returns: a state the batch then leaves unchanged (only
duplicates, or timers with nothing due) is not put back and is read from the store
next time. A batch that fails between the two leaves nothing stale behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

#: Entries kept by default: ~60 MB of states with 90 days of history (~1.2 KB each).
DEFAULT_CAPACITY = 50_000


class StateCache:
    """Customer key -> (partition, serialized state), least recently used evicted first."""

    __slots__ = ("_entries", "capacity", "hits", "misses")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"state cache capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        # dict order is the recency order: take() pops, put() appends
        self._entries: dict[bytes, tuple[int, bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, key: bytes) -> bytes | None:
        """The cached state of ``key`` (removed from the cache), or None on a miss."""
        entry = self._entries.pop(key, None)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        return entry[1]

    def put_all(self, states: Iterable[tuple[bytes, int, bytes]]) -> None:
        """Remember (key, partition, state bytes) as the store now holds them; evict
        the least recently used beyond capacity."""
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
