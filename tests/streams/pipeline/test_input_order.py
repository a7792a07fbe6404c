"""Counting input records that go back in event time, per partition (the cross-topic
order contract, docs/topics.md "Order")."""

from __future__ import annotations

import pytest

from streams.pipeline.input_order import EventTimeRegressions

MIN = 60_000


def test_a_per_customer_backfill_is_counted_live_jitter_is_not() -> None:
    r = EventTimeRegressions(tolerance_ms=MIN)
    # live: two producers, seconds apart, interleaved
    for ts in (0, 5_000, 2_000, 9_000, 8_500, 70_000, 69_000):
        r.observe("transactions", 0, ts)
    assert r.take() == {}
    # a backfill: customer 1's days, then customer 2's from the start again
    day = 86_400_000
    for c in range(2):
        for d in range(5):
            r.observe("balances", 3, 10 * day + d * day + c)
    assert r.take() == {("balances", 3): 4}  # customer 2's first 4 days lie behind
    assert r.take() == {}  # counted once


def test_the_count_is_against_the_highest_time_seen_not_the_previous_record() -> None:
    r = EventTimeRegressions(tolerance_ms=0)
    for ts in (100, 50, 60, 70, 200):
        r.observe("contacts", 1, ts)
    assert r.take() == {("contacts", 1): 3}


def test_partitions_are_separate_and_can_be_forgotten() -> None:
    r = EventTimeRegressions(tolerance_ms=10)
    r.observe("transactions", 0, 1_000)
    r.observe("transactions", 1, 0)  # another partition: no regression
    r.observe("balances", 0, 0)  # another topic: no regression
    assert r.take() == {}
    r.forget([("transactions", 0)])  # revoked: its next owner may re-read older records
    assert not r.observe("transactions", 0, 0)
    with pytest.raises(ValueError):
        EventTimeRegressions(-1)
