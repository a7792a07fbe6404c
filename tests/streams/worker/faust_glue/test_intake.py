"""InputBuffer: the conductor's side never blocks; the worker's side takes what waits.
And the seek back that rewinds never-committed input partitions."""

from __future__ import annotations

import asyncio

from faust.types import TP

from streams.worker.faust_glue.intake import InputBuffer, install_rewind_uncommitted


def test_take_returns_what_is_waiting_up_to_the_limit_in_arrival_order() -> None:
    async def run() -> tuple[list[int], list[int], list[int]]:
        buf = InputBuffer(pressure_high=100)
        for i in range(5):
            buf.put_nowait_enhanced(i, on_pressure_high=lambda: None, on_pressure_drop=lambda: None)
        first = await buf.take(3)
        second = await buf.take(10)
        waiter = asyncio.ensure_future(buf.take(10))
        await asyncio.sleep(0.01)
        assert not waiter.done()  # nothing buffered: waits
        buf.put_nowait_enhanced(9, on_pressure_high=lambda: None, on_pressure_drop=lambda: None)
        return first, second, await asyncio.wait_for(waiter, 1)

    assert asyncio.run(run()) == ([0, 1, 2], [3, 4], [9])


def test_pressure_pauses_each_partition_once_and_resumes_it_when_drained() -> None:
    events: list[str] = []

    def handler(tp: str) -> tuple[object, object]:
        return (lambda: events.append(f"high {tp}")), (lambda: events.append(f"drop {tp}"))

    async def run() -> None:
        buf = InputBuffer(pressure_high=4)
        high_a, drop_a = handler("a")
        high_b, drop_b = handler("b")
        for _ in range(5):
            assert not buf.full()  # the conductor must never block on it
            buf.put_nowait_enhanced(0, on_pressure_high=high_a, on_pressure_drop=drop_a)  # type: ignore[arg-type]
        buf.put_nowait_enhanced(0, on_pressure_high=high_b, on_pressure_drop=drop_b)  # type: ignore[arg-type]
        assert events == ["high a", "high b"]
        await buf.take(1)  # 5 left: still above half
        assert events == ["high a", "high b"]
        await buf.take(4)  # 1 left: both resume
        assert sorted(events[2:]) == ["drop a", "drop b"]

    asyncio.run(run())


class _Thread:
    """The consumer thread's seek calls (what install_rewind_uncommitted uses)."""

    __slots__ = ("committed", "rewound")

    def __init__(self, committed: dict[TP, int | None]) -> None:
        self.committed = committed
        self.rewound: list[TP] = []

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return dict(self.committed)

    async def seek_to_beginning(self, *tps: TP) -> None:
        self.rewound.extend(tps)


class _Consumer:
    __slots__ = ("_thread", "seek_to_committed")

    def __init__(self, thread: _Thread) -> None:
        self._thread = thread

    def _is_changelog_tp(self, tp: TP) -> bool:
        return tp.topic.endswith("-changelog")


def test_a_seek_back_rewinds_input_partitions_that_were_never_committed() -> None:
    """aiokafka's seek_to_committed leaves a partition without a committed offset where
    it is: the records faust dropped there (to read them again after the seek) were
    skipped. Those input partitions go to their beginning; committed ones and changelog
    partitions (recovery seeks them itself) are left alone."""
    committed, fresh, zero = TP("in", 0), TP("in", 1), TP("in", 2)
    changelog = TP("app-state-changelog", 1)
    thread = _Thread({committed: 5, fresh: None, zero: 0, changelog: None})
    consumer = _Consumer(thread)
    install_rewind_uncommitted(consumer)
    got = asyncio.run(consumer.seek_to_committed())
    assert got == {committed: 5, fresh: None, zero: 0, changelog: None}
    assert thread.rewound == [fresh, zero]
