"""``in_event_time_order``: a stable sort by event time, in bounded memory.

The memory test sorts ~16 MB of records through a 1 MB budget and measures the peak
of what Python allocated while doing it (tracemalloc): far below the input."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import INPUT_TOPICS, TOPIC_TICKS
from streams.tools import event_order
from streams.tools.event_order import SortStats, in_event_time_order, record_cost
from streams.tools.simulator import SimRecord

_TIMES = st.integers(-(2**40), 2**45) | st.integers(0, 5)  # many equal times
_RECORDS = st.lists(
    st.builds(
        SimRecord,
        st.sampled_from(INPUT_TOPICS),
        st.binary(max_size=20),
        st.binary(max_size=300),
        _TIMES,
        partition=st.none(),
    )
    # the clock's ticks in a replay file: no key, their partition named
    | st.builds(
        SimRecord,
        st.just(TOPIC_TICKS),
        st.none(),
        st.binary(max_size=40),
        _TIMES,
        st.integers(0, 2**31 - 1),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(records=_RECORDS, budget=st.integers(1, 20_000), fan_in=st.integers(2, 5))
def test_the_order_is_the_stable_sort_by_event_time(
    records: list[SimRecord], budget: int, fan_in: int
) -> None:
    stats = SortStats()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(event_order, "MAX_FAN_IN", fan_in)  # merge passes too
        got = list(in_event_time_order(iter(records), budget, stats))
    assert got == sorted(records, key=lambda r: r.ts_ms)  # sorted() is stable
    assert stats.records == len(records)
    if records and sum(record_cost(r) for r in records) > budget:
        assert stats.runs >= 1


def _backfill(customers: int, per_customer: int, size: int) -> Iterator[SimRecord]:
    """One customer's whole history, then the next one's: time goes back at each."""
    pad = b"x" * size
    for c in range(customers):
        for i in range(per_customer):
            topic = INPUT_TOPICS[i % 2]
            yield SimRecord(topic, f"C{c}".encode(), pad, 1_700_000_000_000 + i * 60_000)


def test_sorting_more_than_the_memory_budget(tmp_path: object) -> None:
    customers, per_customer, size = 40, 50, 8_000
    total = customers * per_customer * (size + 3)
    budget = 1 << 20
    stats = SortStats()
    tracemalloc.start()
    try:
        last = -1
        n = 0
        for rec in in_event_time_order(_backfill(customers, per_customer, size), budget, stats):
            assert rec.ts_ms >= last
            last = rec.ts_ms
            n += 1
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == customers * per_customer
    assert total > 15 * budget
    assert stats.runs >= 15
    assert stats.peak_buffered_bytes <= budget + size + event_order.RECORD_OVERHEAD
    # what Python held at most: about one run, plus a read buffer per run while merging
    assert peak < 4 * budget + stats.runs * 2 * event_order._READ_BUFFER, peak
    assert peak < total / 3
    print(f"\nsorted {total / 2**20:.1f} MB in {stats.runs} runs, peak {peak / 2**20:.2f} MB")


def test_nothing_is_spilled_when_it_fits() -> None:
    stats = SortStats()
    recs = list(_backfill(3, 4, 10))
    assert [r.ts_ms for r in in_event_time_order(recs, 10**9, stats)] == sorted(
        r.ts_ms for r in recs
    )
    assert stats.runs == 0 and stats.spilled_bytes == 0


def test_a_bad_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="memory_bytes"):
        list(in_event_time_order([], 0))
