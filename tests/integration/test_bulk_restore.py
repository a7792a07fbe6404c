"""The bulk changelog read (streams/worker/faust_glue/recovery.py) on the real broker.

The worker-level checks (a restart that restores through it, or through faust's own
loop with ``--restore-budget-s 0``, equals one uninterrupted run) are in
test_worker_e2e.py; these pin the read itself: spans, last-writer-wins, tombstones,
aborted transactions under read_committed, the time budget and the stop signal.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest
from confluent_kafka import Producer
from faust.types import TP

from streams.worker.end_offsets import EndOffsets
from streams.worker.faust_glue.recovery import BulkRecovery, Reached, Span, read_changelog
from streams.worker.faust_glue.table import PartitionedTable
from tests.conftest import MakeTopics


class FakeStore:
    """A writer per partition that records what the bulk read wrote (the real store
    writers are tested in tests/streams/worker/faust_glue/test_table.py)."""

    def __init__(self) -> None:
        self.data: dict[int, dict[bytes, bytes]] = {}
        self.offsets: dict[int, int] = {}
        self.calls = 0

    def writer(self, partition: int):  # type: ignore[no-untyped-def]
        def write(items: list[tuple[bytes, bytes | None]], last_offset: int) -> None:
            self.calls += 1
            part = self.data.setdefault(partition, {})
            for key, value in items:
                if value is None:
                    part.pop(key, None)
                else:
                    part[key] = value
            assert last_offset > self.offsets.get(partition, -1), "offsets must only grow"
            self.offsets[partition] = last_offset

        return write


def _produce(bootstrap: str, topic: str, records: list[tuple[int, bytes, bytes | None]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for partition, key, value in records:
        p.produce(topic, key=key, value=value, partition=partition)
    assert p.flush(30) == 0


@pytest.fixture
def changelog(kafka_bootstrap: str, unique_prefix: str, make_topics: MakeTopics) -> Iterator[str]:
    topic = f"{unique_prefix}state-changelog"
    make_topics([topic], partitions=3)
    yield topic


def _read(
    bootstrap: str,
    spans: dict[TP, Span],
    store: FakeStore,
    *,
    budget: float = 30.0,
    stop: threading.Event | None = None,
    read_committed: bool = False,
) -> dict[TP, Reached]:
    return read_changelog(
        {"bootstrap.servers": bootstrap},
        spans,
        {tp: store.writer(tp.partition) for tp in spans},
        deadline=time.monotonic() + budget,
        stop=stop or threading.Event(),
        read_committed=read_committed,
    )


def test_copies_each_span_last_writer_wins_with_tombstones(
    kafka_bootstrap: str, changelog: str
) -> None:
    # partition 0: 5,000 records over 700 keys (many overwrites); 1: a tombstone; 2: empty
    p0 = [(0, f"k{i % 700}".encode(), f"v{i}".encode()) for i in range(5000)]
    p1: list[tuple[int, bytes, bytes | None]] = [(1, b"a", b"1"), (1, b"b", b"2"), (1, b"a", None)]
    _produce(kafka_bootstrap, changelog, [*p0, *p1])
    store = FakeStore()
    spans = {
        TP(changelog, 0): Span(1000, 3999),  # a middle slice: what faust would ask
        TP(changelog, 1): Span(0, 2),
    }
    reached = _read(kafka_bootstrap, spans, store)

    expected0: dict[bytes, bytes] = {}
    for _p, key, value in p0[1000:4000]:
        expected0[key] = value
    assert store.data[0] == expected0
    assert store.data[1] == {b"b": b"2"}
    assert store.offsets == {0: 3999, 1: 2}
    assert reached[TP(changelog, 0)] == Reached(applied=3999, complete=True, records=3000)
    assert reached[TP(changelog, 1)] == Reached(applied=2, complete=True, records=3)
    assert 2 not in store.data
    assert store.calls >= 2  # written in batches, each with its offset


def test_read_committed_skips_aborted_transactions_and_ends_on_markers(
    kafka_bootstrap: str, changelog: str, unique_prefix: str
) -> None:
    p = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{unique_prefix}tx"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(changelog, key=f"k{i}".encode(), value=b"committed", partition=0)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(changelog, key=f"k{i}".encode(), value=b"aborted", partition=0)
    p.abort_transaction(30)
    # 10 records + commit marker + 10 aborted records + abort marker = offsets 0..21;
    # faust's highwater is the end offset - 1 = the abort marker, never a record
    store = FakeStore()
    tp = TP(changelog, 0)
    reached = _read(kafka_bootstrap, {tp: Span(0, 21)}, store, read_committed=True)

    assert store.data[0] == {f"k{i}".encode(): b"committed" for i in range(10)}
    assert reached[tp].complete  # at the partition's end, though no record has offset 21
    assert reached[tp].applied == 9


def test_records_after_the_span_are_left_to_faust(kafka_bootstrap: str, changelog: str) -> None:
    _produce(kafka_bootstrap, changelog, [(2, f"k{i}".encode(), b"%d" % i) for i in range(50)])
    store = FakeStore()
    tp = TP(changelog, 2)
    reached = _read(kafka_bootstrap, {tp: Span(0, 19)}, store)
    assert reached[tp] == Reached(applied=19, complete=True, records=20)
    assert set(store.data[2]) == {f"k{i}".encode() for i in range(20)}


def test_budget_and_stop_end_the_read_without_writing_anything_inconsistent(
    kafka_bootstrap: str, changelog: str
) -> None:
    _produce(kafka_bootstrap, changelog, [(0, b"k", b"v")] * 100)
    tp = TP(changelog, 0)

    out_of_time = FakeStore()
    reached = _read(kafka_bootstrap, {tp: Span(0, 99)}, out_of_time, budget=0)
    assert reached[tp] == Reached() and not out_of_time.data

    stop = threading.Event()
    stop.set()
    stopped = FakeStore()
    reached = _read(kafka_bootstrap, {tp: Span(0, 99)}, stopped, stop=stop)
    assert reached[tp] == Reached() and not stopped.data


def test_an_unreachable_broker_ends_the_read_with_nothing_complete() -> None:
    """faust's own recovery then reads everything: the bulk read never fails a start."""
    tp = TP("nowhere-changelog", 0)
    started = time.monotonic()
    reached = _read("127.0.0.1:1", {tp: Span(0, 10)}, FakeStore(), budget=3)
    assert reached[tp] == Reached()
    assert time.monotonic() - started < 15


class _CachedLsoConsumer:
    """What faust's consumer answers under exactly_once for a changelog partition not
    fetched since its assignment: aiokafka's cached last stable offset, None."""

    async def highwaters(self, *tps: TP) -> dict[TP, int | None]:
        return {tp: None for tp in tps}


@pytest.mark.parametrize("read_committed", [True, False])
def test_recovery_highwaters_come_from_the_broker(
    kafka_bootstrap: str, changelog: str, tmp_path: Path, read_committed: bool
) -> None:
    """faust would restore nothing (highwater -1) of a partition holding 9 records."""
    _produce(kafka_bootstrap, changelog, [(0, f"k{i}".encode(), b"v") for i in range(9)])
    app = faust.App("hw-test", store="memory://", datadir=str(tmp_path))
    table = PartitionedTable(app.Table("state", key_type=bytes, value_type=bytes, partitions=3))
    recovery = BulkRecovery(
        app,
        app.tables,
        table=table,
        consumer_config={"bootstrap.servers": kafka_bootstrap},
        read_committed=read_committed,
        budget=10,
        end_offsets=EndOffsets({"bootstrap.servers": kafka_bootstrap}, read_committed),
    )
    tps = {TP(changelog, 0), TP(changelog, 1)}
    highwaters: Counter[TP] = Counter()

    asyncio.run(recovery._build_highwaters(_CachedLsoConsumer(), tps, highwaters, "active"))

    assert highwaters == {TP(changelog, 0): 8, TP(changelog, 1): -1}
