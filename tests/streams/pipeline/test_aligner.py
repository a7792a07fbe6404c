"""InputAligner: head-merge by event time across co-partitioned inputs, bounded wait."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.pipeline.aligner import GaveUp, InputAligner

TOPICS = ("transactions", "balances")


def _aligner(max_idle_ms: int = 1000, max_lag_wait_ms: int = 5000) -> InputAligner[tuple[str, int]]:
    # items are (name, ts)
    return InputAligner(TOPICS, lambda item: item[1], max_idle_ms, max_lag_wait_ms)


def test_releases_earliest_head_first_and_keeps_each_input_in_offset_order() -> None:
    a = _aligner()
    a.add([("transactions", 0, ("t1", 10)), ("transactions", 0, ("t2", 5))])
    a.add([("balances", 0, ("b1", 7)), ("balances", 0, ("b2", 20))])
    out = a.release(lambda t, p: True, now_ms=0)
    # t1(10) vs b1(7): b1; t1(10) vs b2(20): t1; then t2(5) — offset order kept
    assert [x[0] for x in out] == ["b1", "t1", "t2", "b2"]


def test_waits_for_an_input_of_unknown_end_but_only_for_max_idle() -> None:
    a = _aligner(max_idle_ms=1000)
    a.add([("transactions", 3, ("t1", 10))])

    def caught_up(topic: str, partition: int) -> bool | None:
        return None if topic == "balances" else True

    assert a.release(caught_up, now_ms=0) == []
    assert a.release(caught_up, now_ms=999) == []
    assert a.held == 1
    assert [x[0] for x in a.release(caught_up, now_ms=1000)] == ["t1"]
    assert (a.idle_timeouts, a.lag_timeouts) == (1, 0)


def test_waits_longer_for_an_input_known_to_hold_unfetched_records() -> None:
    """A known-lagging input holds records that exist and may be earlier: the task
    waits past max_idle_ms, up to max_lag_wait_ms (Kafka Streams waits for them)."""
    a = _aligner(max_idle_ms=1000, max_lag_wait_ms=5000)
    a.add([("transactions", 3, ("t1", 10))])

    def caught_up(topic: str, partition: int) -> bool | None:
        return topic != "balances"

    assert a.release(caught_up, now_ms=0) == []
    assert a.release(caught_up, now_ms=4999) == []
    assert [x[0] for x in a.release(caught_up, now_ms=5000)] == ["t1"]
    assert (a.idle_timeouts, a.lag_timeouts) == (0, 1)


def test_a_caught_up_empty_input_does_not_block() -> None:
    a = _aligner()
    a.add([("transactions", 0, ("t1", 10))])
    assert [x[0] for x in a.release(lambda t, p: True, now_ms=0)] == ["t1"]
    assert a.idle_timeouts == 0


def test_an_earlier_event_arriving_later_is_released_before_a_held_later_one() -> None:
    a = _aligner()
    a.add([("transactions", 0, ("t-late", 50))])
    assert a.release(lambda t, p: t != "balances", now_ms=0) == []
    a.add([("balances", 0, ("b-early", 20))])
    out = a.release(lambda t, p: True, now_ms=3000)  # past max_idle_ms: no timeout either
    assert [x[0] for x in out] == ["b-early", "t-late"]
    assert (a.idle_timeouts, a.lag_timeouts) == (0, 0)


def test_partitions_are_independent_tasks() -> None:
    a = _aligner()
    a.add([("transactions", 0, ("p0", 10)), ("transactions", 1, ("p1", 10))])
    # partition 1's balances input lags; partition 0's does not
    out = a.release(lambda t, p: not (t == "balances" and p == 1), now_ms=0)
    assert [x[0] for x in out] == ["p0"]


def test_drop_partitions_forgets_held_records_of_revoked_partitions() -> None:
    a = _aligner()
    a.add([("transactions", 2, ("x", 1)), ("transactions", 2, ("y", 2))])
    assert a.release(lambda t, p: False, now_ms=0) == []
    assert a.drop_partitions([("transactions", 2)]) == 2
    assert a.held == 0


def test_drain_returns_and_forgets_every_held_record() -> None:
    a = _aligner()
    items = [
        ("transactions", 2, ("x", 1)),
        ("balances", 2, ("y", 2)),
        ("transactions", 5, ("z", 3)),
    ]
    a.add(items)
    assert a.held == 3
    drained = a.drain()
    assert sorted(drained) == sorted(i[2] for i in items)
    assert a.held == 0
    assert a.drain() == []
    assert a.release(lambda t, p: True, now_ms=10_000) == []  # nothing comes back


@given(
    st.lists(st.tuples(st.sampled_from(TOPICS), st.integers(0, 100)), max_size=60),
)
def test_release_is_a_merge_that_loses_and_duplicates_nothing(
    records: list[tuple[str, int]],
) -> None:
    a = _aligner()
    items = [(topic, 0, (f"{topic}-{i}", ts)) for i, (topic, ts) in enumerate(records)]
    a.add(items)
    out = a.release(lambda t, p: True, now_ms=0)
    assert sorted(out) == sorted(i[2] for i in items)
    for topic in TOPICS:  # each input's own order is kept
        mine = [x for x in out if x[0].startswith(topic)]
        assert mine == [i[2] for i in items if i[0] == topic]


def test_on_timeout_is_told_each_timeout_with_partition_inputs_and_wait() -> None:
    gave_up: list[GaveUp] = []
    a = InputAligner(TOPICS, lambda item: item[1], 1000, 5000, on_timeout=gave_up.append)
    a.add([("transactions", 0, ("t1", 10)), ("transactions", 1, ("t2", 10))])
    a.release(lambda t, p: (None if p == 0 else False) if t == "balances" else True, now_ms=0)
    a.release(lambda t, p: (None if p == 0 else False) if t == "balances" else True, now_ms=5000)
    assert gave_up == [
        GaveUp("idle", 0, (("balances", None),), 5000),
        GaveUp("lag", 1, (("balances", False),), 5000),
    ]
    # the wait restarts after a release: the next timeout waits its whole limit again
    a.add([("transactions", 0, ("t3", 20))])
    a.release(lambda t, p: None if t == "balances" else True, now_ms=5500)
    a.release(lambda t, p: None if t == "balances" else True, now_ms=6499)
    assert len(gave_up) == 2
    a.release(lambda t, p: None if t == "balances" else True, now_ms=6500)
    assert gave_up[-1] == GaveUp("idle", 0, (("balances", None),), 1000)


def test_the_rules_watermark_holds_a_task_from_its_first_record_at_or_after_it() -> None:
    """``before``: records stamped earlier go; the first at or after it stops its task
    (later records of the task wait with it, in event-time order); tasks are apart."""
    a = _aligner()
    a.add([("transactions", 0, ("t1", 10)), ("transactions", 0, ("t2", 30))])
    a.add([("balances", 0, ("b1", 20)), ("balances", 1, ("x1", 5))])
    assert a.any_head_from(20) is False and a.any_head_from(6) is True
    out = a.release(lambda t, p: True, now_ms=0, before=20)
    assert [x[0] for x in out] == ["t1", "x1"]
    assert a.held == 2 and a.held_from(20) == 2 and a.any_head_from(20)
    assert a.release(lambda t, p: True, now_ms=10_000, before=20) == []  # no timeout here
    assert [x[0] for x in a.release(lambda t, p: True, now_ms=0, before=31)] == ["b1", "t2"]


class _ReferenceAligner:
    """The aligner as it was before 2026-12-07 (one record per step, every empty
    input's state asked at every step), kept as the reference the faster release
    must equal step for step."""

    def __init__(self, topics: tuple[str, ...], max_idle_ms: int, max_lag_wait_ms: int) -> None:
        self.topics = topics
        self.max_idle_ms, self.max_lag_wait_ms = max_idle_ms, max_lag_wait_ms
        self.buf: dict[int, dict[str, list[tuple[str, int]]]] = {}
        self.blocked_since: dict[int, int] = {}
        self.timeouts: list[GaveUp] = []

    def add(self, items: list[tuple[str, int, tuple[str, int]]]) -> None:
        for topic, partition, item in items:
            self.buf.setdefault(partition, {t: [] for t in self.topics})[topic].append(item)

    def release(self, caught_up, now_ms: int, before: int | None = None) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
        out: list[tuple[str, int]] = []
        for partition in sorted(self.buf):
            task = self.buf[partition]
            while True:
                heads = [(t, q) for t, q in task.items() if q]
                if not heads:
                    self.blocked_since.pop(partition, None)
                    break
                if before is not None and min(q[0][1] for _t, q in heads) >= before:
                    break  # the rules watermark (issue 21): nothing of this task yet
                if len(heads) < len(task):
                    empty = [(t, caught_up(t, partition)) for t, q in task.items() if not q]
                    states = [state for _t, state in empty]
                    if False in states or None in states:
                        lagging = False in states
                        limit = self.max_lag_wait_ms if lagging else self.max_idle_ms
                        since = self.blocked_since.setdefault(partition, now_ms)
                        if now_ms - since < limit:
                            break
                        self.timeouts.append(
                            GaveUp(
                                "lag" if lagging else "idle",
                                partition,
                                tuple((t, st) for t, st in empty if st is not True),
                                now_ms - since,
                            )
                        )
                self.blocked_since.pop(partition, None)
                _, q = min(heads, key=lambda h: (h[1][0][1], self.topics.index(h[0])))
                out.append(q.pop(0))
        return out


THREE = ("transactions", "balances", "customer-profiles")
_step = st.one_of(
    st.tuples(
        st.just("add"),
        st.lists(
            st.tuples(st.sampled_from(THREE), st.integers(0, 2), st.integers(0, 30)), max_size=12
        ),
    ),
    st.tuples(
        st.just("release"),
        st.tuples(
            st.dictionaries(
                st.tuples(st.sampled_from(THREE), st.integers(0, 2)),
                st.sampled_from([True, False, None]),
            ),
            st.integers(0, 3000),
            st.one_of(st.none(), st.integers(0, 31)),
        ),
    ),
)


@given(st.lists(_step, max_size=25), st.sampled_from([(0, 0), (1000, 2500), (200, 200)]))
def test_release_equals_the_reference_step_by_step(steps: list, limits: tuple[int, int]) -> None:  # type: ignore[type-arg]
    """Random adds and releases, each input of each partition caught up, behind or
    unknown per release, the clock moving on, with or without a rules watermark: same
    records in the same order, same timeouts, same held count."""
    gave_up: list[GaveUp] = []
    fast = InputAligner(THREE, lambda item: item[1], limits[0], limits[1], gave_up.append)
    ref = _ReferenceAligner(THREE, limits[0], limits[1])
    now, n = 0, 0
    for kind, arg in steps:
        if kind == "add":
            items = []
            for topic, partition, ts in arg:
                items.append((topic, partition, (f"{topic}-{partition}-{n}", ts)))
                n += 1
            fast.add(items)
            ref.add(items)
        else:
            states, advance, before = arg
            now += advance

            def caught_up(t: str, p: int, states: dict = states) -> bool | None:  # type: ignore[type-arg]
                return states.get((t, p), True)

            assert fast.release(caught_up, now, before) == ref.release(caught_up, now, before)
            assert gave_up == ref.timeouts
        assert fast.held == sum(len(q) for task in ref.buf.values() for q in task.values())
