"""Event-time alignment of co-partitioned inputs (Kafka Streams' task semantics).

One customer's events arrive on four topics and Kafka orders nothing across topics,
so the worker treats partition *p* of every input topic as one task and releases its
records in event-time order: each input keeps its offset order, and the next record
is always the earliest of the inputs' heads. An input with nothing buffered blocks
its task only while it may still hold earlier data:

* if it is caught up (its position has reached the partition's high watermark) the
  task proceeds without it — like Kafka Streams with ``max.task.idle.ms=0``;
* otherwise the task waits for the fetch, but no longer than ``max_idle_ms``, after
  which it proceeds anyway and counts an "idle timeout" (the bounded wait).

With all input already in Kafka (a replay, a restart, a backlog) this makes the
processing order a pure function of the input — the same order the test oracle uses —
instead of an accident of fetch timing. Held records are not acknowledged, so a crash
or a rebalance simply hands them to the next owner.

The clock and the caught-up test come from the caller: this module does no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

CaughtUp = Callable[[str, int], bool]


class InputAligner(Generic[T]):
    """Buffers records per (topic, partition) and releases them in head-merge order.

    ``T`` is whatever the caller attaches to a record (the worker attaches the faust
    event so it can acknowledge exactly what was released).
    """

    def __init__(
        self,
        topics: Sequence[str],
        ts_of: Callable[[T], int],
        max_idle_ms: int = 2000,
    ) -> None:
        self.topics = tuple(topics)
        self.ts_of = ts_of
        self.max_idle_ms = max_idle_ms
        self._buf: dict[int, dict[str, deque[T]]] = {}
        self._blocked_since: dict[int, int] = {}
        self.idle_timeouts = 0

    def add(self, items: Iterable[tuple[str, int, T]]) -> None:
        for topic, partition, item in items:
            task = self._buf.get(partition)
            if task is None:
                task = self._buf[partition] = {t: deque() for t in self.topics}
            task[topic].append(item)

    @property
    def held(self) -> int:
        return sum(len(q) for task in self._buf.values() for q in task.values())

    def blocking_inputs(self) -> list[tuple[str, int]]:
        """(topic, partition) of every empty input in a task that holds records: the
        inputs whose caught-up state decides whether anything can be released."""
        out: list[tuple[str, int]] = []
        for partition, task in self._buf.items():
            if any(task.values()):
                out.extend((t, partition) for t, q in task.items() if not q)
        return out

    def release(self, caught_up: CaughtUp, now_ms: int) -> list[T]:
        """Everything that may be processed now, in processing order."""
        out: list[T] = []
        for partition in sorted(self._buf):
            self._release_task(partition, caught_up, now_ms, out)
        return out

    def _release_task(self, partition: int, caught_up: CaughtUp, now_ms: int, out: list[T]) -> None:
        task = self._buf[partition]
        ts_of = self.ts_of
        while True:
            heads = [(t, q) for t, q in task.items() if q]
            if not heads:
                self._blocked_since.pop(partition, None)
                return
            if len(heads) < len(task):
                waiting = [t for t, q in task.items() if not q and not caught_up(t, partition)]
                if waiting:
                    since = self._blocked_since.setdefault(partition, now_ms)
                    if now_ms - since < self.max_idle_ms:
                        return
                    self.idle_timeouts += 1
            self._blocked_since.pop(partition, None)
            # earliest head first; ties go to the first topic in the configured order
            _, q = min(heads, key=lambda h: (ts_of(h[1][0]), self.topics.index(h[0])))
            out.append(q.popleft())

    def drop_partitions(self, partitions: Iterable[tuple[str, int]]) -> int:
        """Forget held records of revoked partitions; returns how many were dropped.

        They were never acknowledged, so the partition's next owner consumes them.
        """
        dropped = 0
        for topic, partition in partitions:
            task = self._buf.get(partition)
            if task is not None and topic in task:
                dropped += len(task[topic])
                task[topic].clear()
        return dropped
