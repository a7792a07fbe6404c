"""Changelog recovery: faust's Recovery with a bulk read of the active partitions first.

Why: faust restores a table one record at a time through its whole consumer path — a
faust Event per record, a ``wait_for`` task per queue read, debug-log formatting and a
scan of every partition's remaining count per record. Profiled (py-spy, 200,000
customers) that is where recovery's CPU went; restoring 1,000,000 customers (~1 GB of
changelog) took 110 s, where librdkafka alone reads it in a few seconds.

What changes, and what does not: faust still decides *what* to restore and from where
(assignment, standby vs active, highwaters, persisted offsets, the earliest offset
after compaction) and still runs its own per-record loop afterwards. Just before faust
seeks its consumer to the active changelog partitions, :class:`BulkRecovery` reads
each of them from faust's start offset up to faust's highwater with a librdkafka
consumer of its own (no group; read_committed under exactly_once, like faust's), and
writes the records to the local store in batches, each batch together with the
partition's persisted changelog offset (one RocksDB write batch, so data and offset
never disagree). It then advances faust's start offsets, so faust's loop finds
nothing — or only what the time budget left — to read.

Highwaters from the broker: under exactly_once faust takes the recovery highwater of a
changelog partition from aiokafka's ``last_stable_offset()``, which is only what the
last fetch response said — ``None`` (faust then uses -1: "nothing to restore") for a
partition not fetched since it was assigned, or an older value. A worker restarted
under exactly_once (which discards its local store) could so skip restoring a
partition and process its inputs on empty state; the kill -9 test's ~200 unexplained
tier changes of 2026-12-02 fit that. :class:`BulkRecovery` asks the broker instead
(ListOffsets, read_committed under exactly_once) and logs where faust's value differed.

Bounded: faust runs this step under ``broker_request_timeout`` and treats a timeout
as a stop, so the bulk read ends after ``budget`` seconds and leaves the rest to
faust's loop; it also ends at once when faust signals a new rebalance.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from faust.tables.recovery import Recovery
from faust.types import TP

from streams.worker.end_offsets import EndOffsets
from streams.worker.faust_glue.table import BatchWriter, PartitionedTable

log = logging.getLogger("tierstream.recovery")

#: Records taken from librdkafka per call, and per store write.
_CONSUME_BATCH = 5000


@dataclass(frozen=True)
class Span:
    """Offsets of one changelog partition to restore: ``start`` up to ``last``, inclusive."""

    start: int
    last: int


@dataclass
class Reached:
    """How far the bulk read got in one partition."""

    applied: int | None = None  # offset of the last record written to the store
    complete: bool = False  # everything up to the span's ``last`` was read
    records: int = 0


def read_changelog(
    config: Mapping[str, Any],
    spans: Mapping[TP, Span],
    writers: Mapping[TP, BatchWriter],
    *,
    deadline: float,
    stop: threading.Event,
    read_committed: bool,
) -> dict[TP, Reached]:
    """Copy each span of changelog records into its partition's store (blocking).

    Stops a partition at its span's last offset or at the partition's end (EOF: under
    read_committed, trailing transaction markers never arrive as records). Records past
    ``last`` (written after faust took the highwater) are left to faust. Returns how far
    each partition got; what was written is durable with its offset either way.
    """
    reached = {tp: Reached() for tp in spans}
    if not spans:
        return reached
    consumer = Consumer(
        {
            **config,
            "group.id": "tierstream-bulk-restore",  # required by librdkafka; never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",  # a start compacted away meanwhile
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    try:
        _copy(consumer, spans, writers, reached, deadline, stop)
    except Exception:  # what was written stays consistent with its offset
        log.warning("bulk restore failed; faust's recovery reads the rest", exc_info=True)
    finally:
        consumer.close()
    return reached


def _copy(
    consumer: Consumer,
    spans: Mapping[TP, Span],
    writers: Mapping[TP, BatchWriter],
    reached: dict[TP, Reached],
    deadline: float,
    stop: threading.Event,
) -> None:
    by_name = {(tp.topic, tp.partition): tp for tp in spans}
    open_ = set(spans)
    consumer.assign([TopicPartition(tp.topic, tp.partition, s.start) for tp, s in spans.items()])
    while open_ and not stop.is_set() and time.monotonic() < deadline:
        pending: dict[TP, list[tuple[bytes, bytes | None]]] = {}
        last_offset: dict[TP, int] = {}
        for msg in consumer.consume(_CONSUME_BATCH, 0.2):
            err = msg.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(err)
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            # librdkafka sets all three on a fetched record and on a partition EOF; a
            # record without them would be a client bug, not something to restore.
            if topic is None or partition is None or offset is None:
                raise KafkaException(f"changelog record without topic/partition/offset: {msg!r}")
            tp = by_name[(topic, partition)]
            if err is not None:  # end of the partition
                if tp in open_:
                    reached[tp].complete = True
                    open_.discard(tp)
                continue
            if tp not in open_:
                continue
            key = msg.key()
            if key is None:  # a compacted topic refuses keyless records
                raise KafkaException(f"keyless record in changelog {topic}[{partition}]@{offset}")
            last = spans[tp].last
            if offset > last:
                reached[tp].complete = True
                open_.discard(tp)
                continue
            pending.setdefault(tp, []).append((key, msg.value()))
            last_offset[tp] = offset
            if offset == last:
                reached[tp].complete = True
                open_.discard(tp)
        for tp, items in pending.items():
            writers[tp](items, last_offset[tp])
            r = reached[tp]
            r.applied = last_offset[tp]
            r.records += len(items)


class BulkRecovery(Recovery):
    """faust's Recovery service with a bulk read of active changelog partitions."""

    def __init__(
        self,
        app: Any,
        tables: Any,
        *,
        table: PartitionedTable,
        consumer_config: Mapping[str, Any],
        read_committed: bool,
        budget: float,
        end_offsets: EndOffsets,
        on_restored: Callable[[int, float], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, tables, **kwargs)
        self._end_offsets = end_offsets
        #: exactly_once: changelog partitions restored by a completed recovery and
        #: owned since (their local store is complete)
        self._complete: set[TP] = set()
        self._table = table
        self._consumer_config = dict(consumer_config)
        self._read_committed = read_committed
        self._budget = budget
        self._on_restored = on_restored

    async def _build_highwaters(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        if not tps:
            return
        ends = await self._broker_end_offsets(tps)
        for tp in tps:
            highwater = ends[(tp.topic, tp.partition)] - 1  # faust's "last offset" convention
            if destination.get(tp) != highwater:
                log.warning(
                    "recovery highwater of %s changelog %s[%d]: broker %d, faust %s; "
                    "using the broker's",
                    title,
                    tp.topic,
                    tp.partition,
                    highwater,
                    destination.get(tp),
                )
                destination[tp] = highwater

    async def _broker_end_offsets(
        self, tps: set[TP], attempts: int = 5
    ) -> dict[tuple[str, int], int]:
        """End offsets (last stable offsets under exactly_once) asked of the broker.

        Raises after ``attempts`` failures: recovering against an unknown end could
        leave state out, so faust's recovery (and with it the worker) stops instead.
        """
        for attempt in range(1, attempts + 1):
            try:
                return await self._end_offsets.get((tp.topic, tp.partition) for tp in tps)
            except Exception:
                if attempt == attempts:
                    raise
                log.warning("changelog end offsets: attempt %d failed; retrying", attempt)
                await asyncio.sleep(1.0)
        raise AssertionError("unreachable")

    async def _seek_offsets(self, consumer: Any, tps: set[TP], offsets: Any, title: str) -> None:
        if title == "active":
            if self._read_committed:
                self._exactly_once_start_offsets(tps, offsets)
            if tps and self._budget > 0:
                await self._bulk_restore(tps, offsets)
        await super()._seek_offsets(consumer, tps, offsets, title)

    def _exactly_once_start_offsets(self, tps: set[TP], offsets: Any) -> None:
        """exactly_once: the local store counts only for partitions this worker kept.

        The local store is written before the partition's transaction commits, and
        under exactly_once no changelog offset is recorded with those writes (faust's
        persisted offset is where the last recovery ended). So:

        * a partition restored by this worker's last completed recovery and kept across
          this rebalance holds this worker's own writes since — a superset of the
          committed changelog, as nobody else wrote it meanwhile: nothing is read
          (re-reading would replace state from a still-open transaction with older
          committed state);
        * any other partition — new to this worker, or owned before and lost in
          between (its transaction then aborted by the next owner's fencing, the store
          keeping the aborted state), or whose recovery was interrupted — is cleared
          and restored from the committed changelog alone.
        """
        changelog = self._table.changelog_topic
        highwaters = self.active_highwaters
        kept = tps & self._complete
        for tp in tps:
            if tp.topic != changelog:
                continue
            if tp in kept:
                high = highwaters.get(tp)
                if high is not None and (offsets[tp] is None or offsets[tp] < high):
                    offsets[tp] = high
            else:
                self._table.clear_partition(tp.partition)
                offsets[tp] = -1
        self._complete = kept

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        changelog = self._table.changelog_topic
        self._complete |= {tp for tp in self.active_tps if tp.topic == changelog}
        await super().on_recovery_completed(generation_id)

    async def _bulk_restore(self, tps: set[TP], offsets: Any) -> None:
        highwaters = self.active_highwaters
        changelog = self._table.changelog_topic
        spans = {
            tp: Span(offsets[tp] + 1, highwaters[tp])
            for tp in tps
            if tp.topic == changelog
            and highwaters.get(tp) is not None
            and offsets[tp] is not None
            and highwaters[tp] > offsets[tp]
        }
        if not spans:
            return
        # store handles are opened here, on the loop, not in the reading thread
        writers = {tp: self._table.batch_writer(tp.partition) for tp in spans}
        stop = threading.Event()
        started = time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(
            None,
            lambda: read_changelog(
                self._consumer_config,
                spans,
                writers,
                deadline=started + self._budget,
                stop=stop,
                read_committed=self._read_committed,
            ),
        )
        try:
            reached = await asyncio.shield(future)
        except asyncio.CancelledError:
            # a new rebalance (faust cancels this step): stop writing before faust
            # revokes and closes the stores; what was written keeps its offsets
            stop.set()
            await asyncio.wait([future])
            raise
        elapsed = time.monotonic() - started
        total = sum(r.records for r in reached.values())
        for tp, r in reached.items():
            if r.complete:
                offsets[tp] = spans[tp].last
            elif r.applied is not None:
                offsets[tp] = r.applied
        left = [tp for tp, r in reached.items() if not r.complete]
        log.info(
            "bulk restore: %d changelog records in %.1f s from %d partitions%s",
            total,
            elapsed,
            len(spans),
            f"; {len(left)} left to faust's recovery (budget {self._budget:.0f} s)" if left else "",
        )
        if self._on_restored is not None:
            self._on_restored(total, elapsed)
