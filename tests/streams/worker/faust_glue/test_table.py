"""PartitionedTable on both faust stores (no broker: faust's stores work offline).

It reaches into faust's store internals, so these pin the behaviour the worker relies
on: explicit-partition reads and writes, the persisted changelog offset, and the bulk
restore writer.

The worker's writes (``put_many``) carry the changelog offset into the same write
batch as the states, like the bulk restore.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import faust
import pytest
from faust.types import TP

from streams.worker.faust_glue.table import PartitionedTable


@pytest.fixture(params=["memory://", "rocksdb://"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PartitionedTable]:
    app = faust.App(f"t-{tmp_path.name}", store=request.param, datadir=str(tmp_path))
    t = app.Table("state", key_type=bytes, value_type=bytes, partitions=4)
    yield PartitionedTable(t)


def _is_rocksdb(table: PartitionedTable) -> bool:
    return type(table.table.data).__module__.endswith("rocksdb")


def test_reads_and_writes_name_their_partition(table: PartitionedTable) -> None:
    table.put_many(1, [(b"c1", b"one")], None)
    table.put_many(3, [(b"c3", b"three")], None)
    assert table.get(1, b"c1") == b"one"
    assert table.get(1, b"missing") is None
    assert list(table.items(1)) == [(b"c1", b"one")]
    assert list(table.items(3)) == [(b"c3", b"three")]
    assert list(table.items(0)) == []


def test_batch_writer_applies_in_order_with_tombstones(table: PartitionedTable) -> None:
    table.put_many(2, [(b"old", b"x")], None)
    write = table.batch_writer(2)
    write([(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"b", None), (b"old", None)], 41)
    write([(b"c", b"4")], 42)
    assert table.get(2, b"a") == b"3"
    assert table.get(2, b"b") is None
    assert table.get(2, b"old") is None
    assert sorted(table.items(2)) == [(b"a", b"3"), (b"c", b"4")]  # no offset key
    assert list(table.items(1)) == []


def test_batch_writer_persists_the_changelog_offset_with_the_data(
    table: PartitionedTable,
) -> None:
    tp = TP(table.changelog_topic, 2)
    table.batch_writer(2)([(b"a", b"1")], 41)
    store = table.table.data
    if _is_rocksdb(table):
        assert store.persisted_offset(tp) == 41  # faust resumes after it
    else:
        assert store.persisted_offset(tp) is None  # memory keeps no offsets
    table.put_many(2, [(b"b", b"2"), (b"a", b"5")], 57)
    assert store.persisted_offset(tp) == (57 if _is_rocksdb(table) else None)
    assert sorted(table.items(2)) == [(b"a", b"5"), (b"b", b"2")]
    table.put_many(2, [(b"a", b"6")], None)  # no offset given: the old one stays
    assert store.persisted_offset(tp) == (57 if _is_rocksdb(table) else None)
    assert table.get(2, b"a") == b"6"


def test_changelog_topic_is_faust_s_name(table: PartitionedTable) -> None:
    assert table.changelog_topic.endswith("-state-changelog")
