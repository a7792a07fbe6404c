"""THE write order: what a processed batch writes, in which order, before its input is acked.

This is the one place that backs the processing guarantees. The pipeline decided a
batch (``BatchResult``: outputs, new states, profiles); a commit makes it durable and
only then acknowledges the batch's input messages, after which faust may commit their
offsets. One class per guarantee, each with one ``commit`` whose docstring lists its
steps and whose body runs them in that order, like Quix Streams'
``Checkpoint.commit()`` (quixstreams/checkpointing/checkpoint.py).
tests/streams/worker/test_commit.py checks every step's place with recording fakes of
the real classes (``spec_set``): moving any step breaks it.

Erasure (right to be forgotten) follows the same order: the customer's Redis profile is
deleted before any profile of the batch is written (a customer created again later in
the batch gets a fresh one), the tombstone goes to the changelog with the new states
and is acknowledged, the store deletes the key, and only then is the request
acknowledged — so an erasure is never acknowledged before the Redis delete and the
tombstone are durable; a crash before that replays it, and it is idempotent.

Why at_least_once holds without losing decisions: a crash before the changelog is
acknowledged leaves the state unchanged, so the replayed events decide again and
re-emit the same outputs with the same deterministic ids; a crash after it finds the
events already applied (the core deduplicates them), but their outputs and profiles
were durable before the state was. Nothing is acknowledged before it is written.

Why exactly_once sends everything itself: faust-streaming commits offsets inside
per-partition transactions (``<app_id>-<group>-<partition>``) but its topic and table
sends carry no transactional id, so they land outside them (faust #177). tierstream
sends every output and changelog record with the transactional id of the input
partition that caused it, so offsets, outputs and state commit or abort together.
Redis stays outside any Kafka transaction; its versioned writes make a re-run after an
abort rewrite the same versions.

A commit that raises has acknowledged nothing; the loop then stops the worker before
faust can commit anything of that batch (streams/worker/loop.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from faust.types.transports import ProducerT

from streams.metrics import Metrics
from streams.pipeline.records import BatchResult
from streams.redis_sink import RedisProfileSink
from streams.worker.acked_producer import AckedProducer
from streams.worker.faust_glue.table import PartitionedTable

#: Acknowledges the batch's input messages (faust commits acknowledged offsets later).
Acknowledge = Callable[[], None]


class BatchCommit(Protocol):
    """Makes a processed batch durable, then acknowledges its input."""

    async def commit(self, result: BatchResult, acknowledge: Acknowledge) -> None: ...


class AtLeastOnceCommit:
    """at_least_once: every write acknowledged before the next step, inputs last."""

    def __init__(
        self,
        producer: AckedProducer,
        sink: RedisProfileSink,
        table: PartitionedTable,
        output_topics: Mapping[str, str],
        changelog_topic: str,
        metrics: Metrics,
    ) -> None:
        self._producer = producer
        self._sink = sink
        self._table = table
        self._output_topics = output_topics  # contract name -> full topic name
        self._changelog = changelog_topic
        self._metrics = metrics

    async def commit(self, result: BatchResult, acknowledge: Acknowledge) -> None:
        """Write the batch, then acknowledge its input:

        1. outputs (tier changes, offers, alerts, dead letters, erasure audit records)
           acknowledged by the broker, and Redis brought up to date (which retries
           with backoff while Redis is down): erased customers' profiles deleted, then
           the batch's profiles written — the outputs and Redis are independent
           (profiles are versioned), so they overlap, and both finish before the state
           moves;
        2. the new states and the erased customers' tombstones sent to the changelog
           and acknowledged by the broker;
        3. the local store written (tombstones delete), per partition in one write,
           with the newest acknowledged changelog offset of that partition;
        4. only then the input messages acknowledged, so no offset commit can overtake
           any of the writes above.
        """
        started = time.perf_counter()
        names = self._output_topics
        await asyncio.gather(
            self._producer.send_all(
                [(names[o.topic], o.key, o.value, None) for o in result.outputs]
            ),
            redis_update(self._sink, result),
        )
        outputs_done = time.perf_counter()
        stage = self._metrics.write_duration
        stage.labels("outputs").observe(outputs_done - started)
        changes = state_changes(result)
        delivered = await self._producer.send_all(
            [(self._changelog, key, value, partition) for partition, key, value in changes]
        )
        newest = newest_offsets(changes, delivered)
        for partition, items in by_partition(changes).items():
            self._table.put_many(partition, items, newest[partition])
        stage.labels("state").observe(time.perf_counter() - outputs_done)
        acknowledge()


class ExactlyOnceCommit:
    """exactly_once: outputs and changelog in the source partition's transaction."""

    def __init__(
        self,
        producer: Callable[[], ProducerT],
        transactional_prefix: Callable[[], str],
        sink: RedisProfileSink,
        table: PartitionedTable,
        output_topics: Mapping[str, str],
        changelog_topic: str,
        metrics: Metrics,
    ) -> None:
        #: faust's transactional producer (created by the app when first asked for).
        self._producer = producer
        #: ``<app_id>-<group>-``: faust's transactional id without the partition.
        self._prefix = transactional_prefix
        self._sink = sink
        self._table = table
        self._output_topics = output_topics
        self._changelog = changelog_topic
        self._metrics = metrics

    async def commit(self, result: BatchResult, acknowledge: Acknowledge) -> None:
        """Write the batch into the input partitions' transactions, then acknowledge:

        1. outputs sent, each with the transactional id of its source partition;
        2. Redis brought up to date (outside any transaction): erased customers'
           profiles deleted, then the batch's profiles written (versioned, so a re-run
           after an abort rewrites the same versions; an erasure is idempotent);
        3. the local store written (tombstones delete), without a changelog offset: it
           runs ahead of the transaction, and a restart under exactly_once discards it
           (``TierstreamService.discard_uncommitted_local_state``);
        4. the new states and tombstones sent to the changelog, each with the
           transactional id of its partition;
        5. every send of steps 1 and 4 acknowledged by the broker;
        6. only then the input messages acknowledged: faust commits their offsets in
           the same transactions, so offsets, outputs and state commit or abort
           together.
        """
        started = time.perf_counter()
        prefix = self._prefix()
        send = self._producer().send
        full = self._output_topics
        pending: list[Awaitable[Any]] = [
            await send(
                full[o.topic],
                o.key,
                o.value,
                None,
                None,
                None,
                transactional_id=f"{prefix}{o.source_partition}",
            )
            for o in result.outputs
        ]
        await redis_update(self._sink, result)
        changes = state_changes(result)
        for partition, items in by_partition(changes).items():
            self._table.put_many(partition, items, None)
        pending += [
            await send(
                self._changelog,
                key,
                value,
                partition,
                None,
                None,
                transactional_id=f"{prefix}{partition}",
            )
            for partition, key, value in changes
        ]
        for fut in pending:
            await fut
        self._metrics.write_duration.labels("transaction").observe(time.perf_counter() - started)
        acknowledge()


#: (partition, key, serialized state -- None: a tombstone, the customer was erased)
StateChange = tuple[int, bytes, bytes | None]


async def redis_update(sink: RedisProfileSink, result: BatchResult) -> None:
    """Erased customers' profiles deleted first, then the batch's profiles written."""
    await sink.erase(result.erased_profiles)
    await sink.write(result.profiles)


def state_changes(result: BatchResult) -> list[StateChange]:
    """What the changelog and the store get: the new states, then the tombstones."""
    changes: list[StateChange] = list(result.states)
    changes += [(partition, key, None) for partition, key in result.tombstones]
    return changes


def by_partition(states: Sequence[StateChange]) -> dict[int, list[tuple[bytes, bytes | None]]]:
    """A batch's (partition, key, state) rows grouped per partition, in order."""
    out: dict[int, list[tuple[bytes, bytes | None]]] = {}
    for partition, key, value in states:
        out.setdefault(partition, []).append((key, value))
    return out


def newest_offsets(
    states: Sequence[StateChange], delivered: Sequence[tuple[int, int]]
) -> dict[int, int]:
    """Per partition, the newest changelog offset the broker acknowledged for ``states``
    (``delivered`` holds each record's (partition, offset), in the same order)."""
    newest: dict[int, int] = {}
    for (partition, _k, _v), (_p, offset) in zip(states, delivered, strict=True):
        if offset > newest.get(partition, -1):
            newest[partition] = offset
    return newest
