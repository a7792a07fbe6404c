"""Event-time alignment of co-partitioned inputs (Kafka Streams' task semantics).

One customer's events arrive on four topics and Kafka orders nothing across topics,
so the worker treats partition *p* of every input topic as one task and releases its
records in event-time order: each input keeps its offset order, and the next record
is always the earliest of the inputs' heads. An input with nothing buffered blocks
its task only while it may still hold earlier data:

* caught up (the broker's end offset says it holds nothing more): the task proceeds
  without it — like Kafka Streams with ``max.task.idle.ms=0``;
* known to be behind (the broker holds records this worker has not received yet):
  the task waits for the fetch, as Kafka Streams does for a partition with known lag
  — those records exist and may be earlier. The wait is still bounded, by
  ``max_lag_wait_ms`` (the worker's default is 2 s, a throughput trade-off, which the
  reliability tests use too), so a fetch that never comes cannot stall the partition
  forever; running out counts a ``lag`` timeout;
* unknown (the broker did not answer): the task waits at most ``max_idle_ms``
  (default 2 s), then proceeds and counts an ``idle`` timeout.

Why not give up on a lagging input after a couple of seconds: at a restart, under a
rebalance or with a backlog, one input's fetch can trail another's by seconds, and
proceeding then applies, say, a balance before the profile that precedes it in event
time — the kill test caught exactly that (onboarding offers missing because consent
had not been applied yet).

With all input already in Kafka (a replay, a restart, a backlog) this makes the
processing order a pure function of the input — the same order the test oracle uses —
instead of an accident of fetch timing. Held records are not acknowledged, so a crash
or a rebalance simply hands them to the next owner.

The clock and the caught-up test come from the caller: this module does no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")

#: (topic, partition) -> True caught up, False known behind, None unknown.
CaughtUp = Callable[[str, int], bool | None]


class GaveUp(NamedTuple):
    """One release that stopped waiting: from here on, events of ``partition`` may be
    applied out of event-time order across topics."""

    reason: str  # "lag": an input known to hold unfetched records; "idle": unknown
    partition: int
    #: the empty inputs it went ahead without, and what was known of each
    waiting_for: tuple[tuple[str, bool | None], ...]
    waited_ms: int


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
        max_lag_wait_ms: int = 2000,
        on_timeout: Callable[[GaveUp], None] | None = None,
    ) -> None:
        self.topics = tuple(topics)
        self.ts_of = ts_of
        self.max_idle_ms = max_idle_ms
        self.max_lag_wait_ms = max_lag_wait_ms
        #: Told of every release that stops waiting (the worker's metric and log).
        self.on_timeout = on_timeout
        #: partition -> topic (in ``topics`` order) -> (event time, record), offset order
        self._buf: dict[int, dict[str, deque[tuple[int, T]]]] = {}
        self._blocked_since: dict[int, int] = {}
        #: Releases that went ahead without an input whose end was unknown.
        self.idle_timeouts = 0
        #: Releases that went ahead without an input known to hold unreceived records.
        self.lag_timeouts = 0

    def add(self, items: Iterable[tuple[str, int, T]]) -> None:
        ts_of = self.ts_of
        buf = self._buf
        for topic, partition, item in items:
            task = buf.get(partition)
            if task is None:
                task = buf[partition] = {t: deque() for t in self.topics}
            task[topic].append((ts_of(item), item))

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

    def release(self, caught_up: CaughtUp, now_ms: int, before: int | None = None) -> list[T]:
        """Everything that may be processed now, in processing order; with ``before``,
        only records stamped earlier than it (the rules watermark: a record at or after
        it waits, and with it the rest of its task, until the worker knows every rules
        version that could take effect by its time -- streams/worker/rules_gate.py)."""
        out: list[T] = []
        for partition in sorted(self._buf):
            self._release_task(partition, caught_up, now_ms, out, before)
        return out

    def any_head_from(self, ts: int) -> bool:
        """Whether some task's earliest record is stamped at or after ``ts``."""
        for task in self._buf.values():
            heads = [q[0][0] for q in task.values() if q]
            if heads and min(heads) >= ts:
                return True
        return False

    def held_from(self, ts: int) -> int:
        """How many held records are stamped at or after ``ts``."""
        return sum(1 for task in self._buf.values() for q in task.values() for x in q if x[0] >= ts)

    def _release_task(
        self,
        partition: int,
        caught_up: CaughtUp,
        now_ms: int,
        out: list[T],
        before: int | None = None,
    ) -> None:
        """Release partition ``partition``'s records in head-merge order while no input
        that may hold earlier records blocks it, and (with ``before``, the rules
        watermark) while the earliest head is stamped before ``before``.

        Each input's caught-up state is asked once per release (it cannot change
        while the release runs: the caller answers from what it knew before), and
        while every empty input is caught up the heads are merged without asking
        again until one more input runs empty. When an input blocks, one record
        at most goes per release once the wait has run out (as before 2026-12-07).
        """
        task = self._buf[partition]
        known: dict[str, bool | None] = {}
        while True:
            heads = [q for q in task.values() if q]
            if not heads:
                self._blocked_since.pop(partition, None)
                return
            if before is not None and min(q[0][0] for q in heads) >= before:
                return  # not before the rules watermark: nothing of this task yet
            if len(heads) < len(task):
                empty: list[tuple[str, bool | None]] = []
                for t, q in task.items():
                    if not q:
                        if t not in known:
                            known[t] = caught_up(t, partition)
                        empty.append((t, known[t]))
                states = [state for _t, state in empty]
                if False in states or None in states:
                    lagging = False in states
                    limit = self.max_lag_wait_ms if lagging else self.max_idle_ms
                    since = self._blocked_since.setdefault(partition, now_ms)
                    if now_ms - since < limit:
                        return
                    if lagging:
                        self.lag_timeouts += 1
                    else:
                        self.idle_timeouts += 1
                    if self.on_timeout is not None:
                        self.on_timeout(
                            GaveUp(
                                "lag" if lagging else "idle",
                                partition,
                                tuple((t, st) for t, st in empty if st is not True),
                                now_ms - since,
                            )
                        )
                    self._blocked_since.pop(partition, None)
                    out.append(_earliest(heads).popleft()[1])
                    continue
            self._blocked_since.pop(partition, None)
            # nothing blocks: merge until one more input runs empty (earliest head
            # first; ties go to the first input in the configured order)
            if len(heads) == 1:
                q = heads[0]
                if before is None:
                    out.extend(item for _ts, item in q)
                    q.clear()
                else:  # up to the first record at or after the watermark
                    while q and q[0][0] < before:
                        out.append(q.popleft()[1])
                continue
            while True:
                q = _earliest(heads)
                if before is not None and q[0][0] >= before:
                    break  # every head is at or after the watermark: the loop returns
                out.append(q.popleft()[1])
                if not q:
                    break

    def drain(self) -> list[T]:
        """Forget every held record and return them (the worker is giving up its
        partitions: nothing held will be processed here)."""
        out: list[T] = []
        for task in self._buf.values():
            for queue in task.values():
                out.extend(item for _ts, item in queue)
                queue.clear()
        self._blocked_since.clear()
        return out

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


def _earliest(heads: list[deque[tuple[int, T]]]) -> deque[tuple[int, T]]:
    """The input whose head is earliest; on a tie the first (``heads`` keeps the
    configured order)."""
    best = heads[0]
    best_ts = best[0][0]
    for q in heads[1:]:
        ts = q[0][0]
        if ts < best_ts:
            best, best_ts = q, ts
    return best
