"""Reading the KPI job's topics: from the beginning up to the end taken at the start.

Why the end is fixed at the start: the job answers "what happened up to now", and a
worker that keeps writing must not make it read forever or give figures of a moving
moment. So the end offsets of every partition of ``tier-changes``, ``offers`` and
``offer-responses`` are taken first, and each partition is read from its earliest
retained offset up to that end (``read_committed``: under exactly_once an aborted
decision was never made). No consumer group is joined and nothing is committed: the job
can run next to the worker, as often as needed.

Each record is judged by its topic's contract -- the decisions by the output schemas
(schemas/outputs.py), the responses by the worker's own decoder -- and goes into the
``KpiInput`` (streams/tools/kpi.py) or is counted there as malformed with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from schemas.decoder import DecodeError, Decoder
from schemas.events import TOPIC_OFFER_RESPONSES, TOPIC_OFFERS, TOPIC_TIER_CHANGES, OfferResponse
from schemas.outputs import read_output
from streams.settings import Settings
from streams.tools.kpi import KpiInput

#: The topics the job reads (contract names), in the order they are reported.
KPI_TOPICS = (TOPIC_TIER_CHANGES, TOPIC_OFFERS, TOPIC_OFFER_RESPONSES)

#: progress(records read so far, records to read in all)
Progress = Callable[[int, int], None]


class KpiReadError(RuntimeError):
    """A topic cannot be read to its end (missing, Kafka unreachable, stalled)."""


@dataclass
class TopicExtent:
    """What was read of one topic: per partition the first offset and the end."""

    topic: str  # full (prefixed) name
    start: dict[int, int] = field(default_factory=dict)
    end: dict[int, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        """Offsets between start and end (control records of transactions included)."""
        return sum(self.end[p] - self.start[p] for p in self.end)


def read_kpi_topics(
    settings: Settings,
    decoder: Decoder,
    into: KpiInput,
    progress: Progress | None = None,
    *,
    timeout: float = 30.0,
    stall_s: float = 60.0,
) -> dict[str, TopicExtent]:
    """Read the three topics into ``into``; returns what was read of each.

    Raises ``KpiReadError`` when a topic is missing or a partition makes no progress
    for ``stall_s`` seconds before reaching its end (e.g. a transaction left open).
    """
    consumer = Consumer(
        settings.confluent_config(
            **{
                "group.id": "tierstream-kpi",  # never joined: partitions are assigned
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.max.bytes": 16_777_216,
                "queued.max.messages.kbytes": 16_384,  # the prefetch, bounded
            }
        )
    )
    try:
        extents, assignment = _extents(consumer, settings, timeout)
        total = sum(e.records for e in extents.values())
        contract = {settings.topic(t): t for t in KPI_TOPICS}
        pending = {(tp.topic, tp.partition): extents[contract[tp.topic]] for tp in assignment}
        consumer.assign(assignment)
        done = 0
        last_progress = last_move = time.monotonic()
        while pending:
            msgs = consumer.consume(num_messages=5000, timeout=0.5)
            now = time.monotonic()
            for msg in msgs:
                tp = (str(msg.topic()), msg.partition() or 0)
                extent = pending.get(tp)
                if extent is None:
                    continue  # a partition already read to its end
                err = msg.error()
                offset = msg.offset() or 0
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise KpiReadError(f"reading {tp[0]}[{tp[1]}]: {err.str()}")
                    if offset >= extent.end[tp[1]]:
                        del pending[tp]  # the end (past control records at the end)
                    continue
                if offset >= extent.end[tp[1]]:
                    del pending[tp]  # written after the start: not ours
                    continue
                _take(contract[tp[0]], msg, decoder, into)
                done += 1
                last_move = now
                if offset + 1 >= extent.end[tp[1]]:
                    del pending[tp]
            if progress is not None and now - last_progress >= 0.5:
                progress(done, total)
                last_progress = now
            if pending and now - last_move > stall_s:
                where = ", ".join(f"{t}[{p}]" for t, p in sorted(pending))
                raise KpiReadError(
                    f"no progress for {stall_s:.0f}s before the end of {where} "
                    "(an open transaction? the broker unreachable?)"
                )
        if progress is not None:
            progress(done, total)
        return extents
    except KafkaException as exc:
        raise KpiReadError(f"cannot read from {settings.kafka_bootstrap}: {exc.args[0]}") from exc
    finally:
        consumer.close()


def _extents(
    consumer: Consumer, settings: Settings, timeout: float
) -> tuple[dict[str, TopicExtent], list[TopicPartition]]:
    """Per topic, every partition's earliest offset and its end now; the partitions
    that hold anything, assigned from their earliest offset."""
    extents: dict[str, TopicExtent] = {}
    assignment: list[TopicPartition] = []
    meta = consumer.list_topics(timeout=timeout).topics
    missing = [settings.topic(t) for t in KPI_TOPICS if settings.topic(t) not in meta]
    if missing:
        raise KpiReadError(
            f"topics missing on {settings.kafka_bootstrap}: {', '.join(missing)} "
            "(is the topic prefix right? `tierstream topics create` makes them)"
        )
    for topic in KPI_TOPICS:
        full = settings.topic(topic)
        extent = extents[topic] = TopicExtent(full)
        for p in sorted(meta[full].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(full, p), timeout=timeout)
            extent.start[p], extent.end[p] = low, high
            if high > low:
                assignment.append(TopicPartition(full, p, low))
    return extents, assignment


def _take(topic: str, msg: Message, decoder: Decoder, into: KpiInput) -> None:
    where = f"[{msg.partition()}]@{msg.offset()}"
    if topic == TOPIC_OFFER_RESPONSES:
        ev = decoder.decode(topic, msg.value())
        if not isinstance(ev, DecodeError) and msg.key() != ev.customer_id.encode():
            ev = DecodeError("key", "does not equal the record's customer_id")
        if isinstance(ev, DecodeError):
            into.add_malformed(topic, where, ev.field, ev.reason)
        elif isinstance(ev, OfferResponse):
            into.add_response(ev)
        return
    rec = read_output(topic, msg.key(), msg.value())
    if isinstance(rec, DecodeError):
        into.add_malformed(topic, where, rec.field, rec.reason)
    elif topic == TOPIC_TIER_CHANGES:
        into.add_tier_change(rec, msg.partition() or 0, msg.offset() or 0)
    else:
        into.add_offer(rec)
