"""The worker's offers, read back for the simulator to answer (issue 23).

Why a feed and not a simulation of the offers: only the worker knows an offer's
``event_id`` (a hash of its cause, kind and rules version), and a response must name
it. So ``tierstream simulate`` (when it answers offers: ``--demo`` or
``--accept-rate``) reads the ``offers`` topic from where it ended when the simulator
started -- the offers of this run -- without a consumer group (nothing is committed),
and hands every valid offer to ``Simulator.answer`` between the records it produces.
A record that is not a valid offer (schemas/json/offers.schema.json) is skipped and
counted, never guessed at.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from schemas.decoder import validate_output
from schemas.events import TOPIC_OFFERS
from streams.settings import Settings
from streams.tools.simulator import SimRecord, Simulator


class OfferFeedError(RuntimeError):
    """The offers topic cannot be read (missing, or Kafka unreachable)."""


class OfferFeed:
    """New records of the ``offers`` topic, fetched without blocking."""

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self.topic = settings.topic(TOPIC_OFFERS)
        self.read = 0
        self.skipped = 0
        self.consumer = Consumer(
            settings.confluent_config(
                **{
                    "group.id": "tierstream-simulate-offers",  # never joined nor committed
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                }
            )
        )
        try:
            meta = self.consumer.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise OfferFeedError(
                    f"topic {self.topic} missing; create it with `tierstream topics create`"
                )
            start: list[TopicPartition] = []
            for p in sorted(meta.partitions):
                _low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=timeout
                )
                start.append(TopicPartition(self.topic, p, high))
        except KafkaException as exc:
            self.consumer.close()
            raise OfferFeedError(f"cannot read {self.topic}: {exc.args[0]}") from exc
        except OfferFeedError:
            self.consumer.close()
            raise
        self.consumer.assign(start)

    def poll(self, max_records: int = 1000) -> list[dict[str, Any]]:
        """The offers that arrived since the last call (none waited for)."""
        out: list[dict[str, Any]] = []
        for msg in self.consumer.consume(num_messages=max_records, timeout=0):
            if msg.error():
                continue  # partition EOF and transient errors: nothing to answer
            raw = msg.value()
            try:
                doc = orjson.loads(raw) if raw is not None else None
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                validate_output(TOPIC_OFFERS, doc)
            except (orjson.JSONDecodeError, ValueError):
                self.skipped += 1
                continue
            self.read += 1
            out.append(doc)
        return out

    def close(self) -> None:
        self.consumer.close()


def answering(
    records: Iterator[SimRecord], sim: Simulator, feed: OfferFeed, every: int = 200
) -> Iterator[SimRecord]:
    """``records`` (the simulator's), with the offers that arrived handed to
    ``sim.answer`` every ``every`` records: the answers come out of ``records`` itself,
    in event-time order with the bank's events."""
    for n, rec in enumerate(records):
        if n % every == 0:
            for offer in feed.poll():
                sim.answer(offer)
        yield rec
