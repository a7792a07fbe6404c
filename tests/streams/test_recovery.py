"""BulkRecovery's exactly_once rule for partitions it did not own (no broker needed;
the broker-facing parts are in tests/integration/test_bulk_restore.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import faust
import pytest
from faust.types import TP

from streams.end_offsets import EndOffsets
from streams.recovery import BulkRecovery
from streams.table import PartitionedTable


class _SeekRecorder:
    """faust's consumer as recovery uses it here: seeks only."""

    def __init__(self) -> None:
        self.seeks: list[dict[TP, int]] = []

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.seeks.append(dict(offsets))


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
@pytest.mark.parametrize("read_committed", [True, False])
def test_exactly_once_restores_partitions_it_did_not_own_from_the_changelog_alone(
    tmp_path: Path, store: str, read_committed: bool
) -> None:
    app = faust.App("rec-test", store=store, datadir=str(tmp_path))
    table = PartitionedTable(app.Table("state", key_type=bytes, value_type=bytes, partitions=4))
    recovery = BulkRecovery(
        app,
        app.tables,
        table=table,
        consumer_config={},
        read_committed=read_committed,
        budget=0,
        end_offsets=EndOffsets({"bootstrap.servers": "127.0.0.1:1"}, read_committed),
    )
    p0, p1, p2 = (TP(table.changelog_topic, p) for p in range(3))
    for tp in (p0, p1, p2):
        table.batch_writer(tp.partition)([(b"c%d" % tp.partition, b"local")], 10)
    offsets: Counter[TP] = Counter({p0: 10, p1: 10})

    recovery._owned = {p0}  # owned p0 in the last assignment; p1 comes (back) now
    consumer = _SeekRecorder()
    asyncio.run(recovery._seek_offsets(consumer, {p0, p1}, offsets, "active"))

    assert list(table.items(0)) == [(b"c0", b"local")]  # kept: its own committed writes
    assert list(table.items(2)) == [(b"c2", b"local")]  # not assigned: untouched
    if read_committed:
        assert list(table.items(1)) == []  # may hold an aborted transaction's state
        assert offsets == {p0: 10, p1: -1}  # read from the start of the changelog
    else:
        assert list(table.items(1)) == [(b"c1", b"local")]
        assert offsets == {p0: 10, p1: 10}
    assert consumer.seeks == [{p0: 10, p1: 0 if read_committed else 10}]  # faust seeks on
