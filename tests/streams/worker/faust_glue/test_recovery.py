"""BulkRecovery's exactly_once rule for kept and newly assigned partitions (no broker
needed; the broker-facing parts are in tests/integration/test_bulk_restore.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import faust
import pytest
from faust.types import TP

from streams.worker.end_offsets import EndOffsets
from streams.worker.faust_glue.recovery import BulkRecovery
from streams.worker.faust_glue.table import PartitionedTable


class _SeekRecorder:
    """faust's consumer as recovery uses it here: seeks only."""

    def __init__(self) -> None:
        self.seeks: list[dict[TP, int]] = []

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.seeks.append(dict(offsets))


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
@pytest.mark.parametrize("read_committed", [True, False])
def test_exactly_once_keeps_kept_partitions_and_restores_others_from_the_changelog(
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

    recovery._complete = {p0}  # p0 restored and kept; p1 comes (back) now
    recovery.active_highwaters.update({p0: 15, p1: 15})  # the committed changelog's end
    consumer = _SeekRecorder()
    asyncio.run(recovery._seek_offsets(consumer, {p0, p1}, offsets, "active"))

    assert list(table.items(0)) == [(b"c0", b"local")]  # kept: its own writes
    assert list(table.items(2)) == [(b"c2", b"local")]  # not assigned: untouched
    if read_committed:
        assert list(table.items(1)) == []  # may hold an aborted transaction's state
        # p0: nothing to read (its own writes include the committed ones); p1: all
        assert offsets == {p0: 15, p1: -1}
    else:
        assert list(table.items(1)) == [(b"c1", b"local")]
        assert offsets == {p0: 10, p1: 10}
    assert consumer.seeks == [{p0: 15, p1: 0} if read_committed else {p0: 10, p1: 10}]
