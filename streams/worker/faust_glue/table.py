"""Explicit-partition access to faust's changelog-backed customer-state table.

faust's tables find the partition of a write from the *ambient* current event
(``faust.streams.current_event()``): correct inside ``async for event in stream``,
wrong or impossible for batches from ``take_events``, where one batch spans many
partitions. tierstream processes in batches, so every read and write here names its
partition explicitly; the changelog record goes to that same partition, which is the
partition the customer's input events arrive on (co-partitioning is checked at start).

faust still does what it is good at: creating the changelog topic, recovering the
store from it on assignment, standby replicas and rebalancing. Values are the core's
serialized ``CustomerState`` bytes (raw serializer), so faust never touches their
format.

This reaches into faust's store internals (``_db_for_partition``, ``_key_index`` for
RocksDB; ``data`` and ``_key_partition`` for memory). Those are stable across the
faust-streaming versions pyproject allows;
tests/streams/worker/faust_glue/test_table.py pins the behaviour on both stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from faust.stores import memory as memory_store

try:  # rocksdict is a runtime dependency, but keep memory-only installs importable
    from faust.stores import rocksdb as rocksdb_store
except ImportError:  # pragma: no cover
    rocksdb_store = None  # type: ignore[assignment]


#: Writes one batch of records ``(key, value or None for a tombstone)`` of a partition
#: into the local store, with the changelog offset of the batch's last record (None:
#: keep the stored offset).
BatchWriter = Callable[[Sequence[tuple[bytes, bytes | None]], int | None], None]


class PartitionedTable:
    """Reads and writes one faust table with the partition given by the caller."""

    def __init__(self, table: Any) -> None:
        self.table = table

    @property
    def _store(self) -> Any:
        return self.table.data

    def get(self, partition: int, key: bytes) -> bytes | None:
        store = self._store
        if isinstance(store, memory_store.Store):
            value = store.data.get(key)
            return value if value is None else bytes(value)
        if rocksdb_store is not None and isinstance(store, rocksdb_store.Store):
            value = store._db_for_partition(partition).get(key)
            return value if value is None else bytes(value)
        raise TypeError(f"unsupported table store {type(store).__name__}")

    def put_many(
        self,
        partition: int,
        items: Sequence[tuple[bytes, bytes | None]],
        changelog_offset: int | None,
    ) -> None:
        """Write one batch's states of a partition into the local store only.

        The caller sends the changelog records itself: faust's own ``send_changelog``
        queues the record in a buffer that its offset commit does not reliably drain
        (``ProducerBuffer.flush`` gives up after 0.1 s without progress), so a commit
        can overtake the state it covers and a kill then loses that state. The worker
        therefore sends every changelog record itself and acknowledges input only after
        the broker acknowledged the record (under exactly_once, inside the partition's
        transaction), and passes the newest acknowledged changelog offset here.

        It is the bulk restore's writer: on RocksDB one write batch holding the states
        and (when given) that offset -- one write instead of one per customer (a put
        per key was 6% of the worker's GIL time under load, py-spy 2026-12-03).
        """
        self.batch_writer(partition)(items, changelog_offset)

    @property
    def changelog_topic(self) -> str:
        return str(self.table.changelog_topic.get_topic_name())

    def batch_writer(self, partition: int) -> BatchWriter:
        """A writer for bulk changelog restore (faust_glue/recovery.py) and the worker's
        batches (``put_many``), callable from a thread: the store handle is resolved
        here, on the caller's thread.

        RocksDB: the records and the partition's persisted changelog offset go into one
        write batch, so after a crash the store never holds data its offset does not
        cover (or the reverse); faust resumes recovery after that offset. Memory store:
        plain dict writes (it keeps no offsets).
        """
        store = self._store
        if isinstance(store, memory_store.Store):
            data, owner = store.data, store._key_partition

            def write_memory(
                items: Sequence[tuple[bytes, bytes | None]], last_offset: int | None
            ) -> None:
                for key, value in items:
                    if value is None:
                        data.pop(key, None)
                        owner.pop(key, None)
                    else:
                        data[key] = value
                        owner[key] = partition

            return write_memory
        if rocksdb_store is not None and isinstance(store, rocksdb_store.Store):
            if not store.use_rocksdict:
                raise TypeError("tierstream's table writes need the rocksdict RocksDB driver")
            from rocksdict import WriteBatch

            db = store._db_for_partition(partition)
            offset_key = store.offset_key

            def write_rocksdb(
                items: Sequence[tuple[bytes, bytes | None]], last_offset: int | None
            ) -> None:
                batch = WriteBatch(raw_mode=True)
                for key, value in items:
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
                if last_offset is not None:
                    batch.put(offset_key, str(last_offset).encode())
                db.write(batch)

            return write_rocksdb
        raise TypeError(f"unsupported table store {type(store).__name__}")

    def clear_partition(self, partition: int) -> None:
        """Delete every key of one partition held locally, faust's persisted changelog
        offset included (the next recovery then reads the partition's whole changelog).
        """
        store = self._store
        if isinstance(store, memory_store.Store):
            owner = store._key_partition
            for key in [k for k, p in owner.items() if p == partition]:
                store.data.pop(key, None)
                del owner[key]
        elif rocksdb_store is not None and isinstance(store, rocksdb_store.Store):
            db = store._db_for_partition(partition)
            it = db.iter()
            it.seek_to_first()
            if not it.valid():
                return
            first = it.key()
            it.seek_to_last()
            last = it.key()
            del it
            db.delete_range(first, last)  # [first, last)
            db.delete(last)
        else:
            raise TypeError(f"unsupported table store {type(store).__name__}")

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of one partition held locally (for Redis resyncs)."""
        store = self._store
        if isinstance(store, memory_store.Store):
            owner = store._key_partition
            for key, value in list(store.data.items()):
                if owner.get(key) == partition and value is not None:
                    yield bytes(key), bytes(value)
        elif rocksdb_store is not None and isinstance(store, rocksdb_store.Store):
            skip = store.offset_key  # faust keeps its changelog offset in the same db
            for key, value in store._db_for_partition(partition).items():
                if key != skip:
                    yield bytes(key), bytes(value)
        else:
            raise TypeError(f"unsupported table store {type(store).__name__}")
