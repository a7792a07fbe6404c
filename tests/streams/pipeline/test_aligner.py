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
