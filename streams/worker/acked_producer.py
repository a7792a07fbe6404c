"""A librdkafka producer for the at-least-once write path: send a batch, await its acks.

Why not faust's (aiokafka) producer: it builds batches, encodes requests and runs its
sender in Python on the worker's one event loop. In a profile of the worker under a
backlog that was the largest cost left outside tierstream's own code (about 20% of
its CPU for one changelog record and a few outputs per event). librdkafka does the
same work on its own threads in C, and waiting for the acknowledgements (``flush``)
happens on a worker thread with the GIL released.

Records keep the order in which they are sent per partition (idempotent producer,
``acks=all``); keyed records without an explicit partition go where Kafka's Java
clients and aiokafka put them (murmur2, see ``Settings.producer_config``).
Under exactly_once the worker does not use this: outputs and changelog records must
go into faust's per-partition transactions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

#: (topic, key, value -- None: a tombstone --, partition or None for the key's partition)
Record = tuple[str, bytes | None, bytes | None, int | None]


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge a record (after librdkafka's own retries)."""


class AckedProducer:
    """Sends batches of records and returns each record's (partition, offset)."""

    def __init__(self, config: dict[str, Any], timeout: float = 60.0) -> None:
        self._producer = Producer(config)
        self._timeout = timeout

    async def send_all(self, records: Sequence[Record]) -> list[tuple[int, int]]:
        """Send every record and wait until the broker acknowledged all of them.

        Raises ``DeliveryFailed`` naming the first failure; then nothing may be
        acknowledged upstream (some records may have been written: the caller's
        replay writes them again with the same ids).
        """
        if not records:
            return []
        results: list[tuple[int, int] | None] = [None] * len(records)
        errors: list[str] = []
        produce = self._producer.produce
        poll = self._producer.poll
        for i, (topic, key, value, partition) in enumerate(records):

            def on_delivery(err: KafkaError | None, msg: Message, i: int = i) -> None:
                if err is not None:
                    errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")
                else:
                    results[i] = (msg.partition() or 0, msg.offset() or 0)

            kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
            if partition is not None:
                kwargs["partition"] = partition
            while True:
                try:
                    produce(topic, **kwargs)
                    break
                except BufferError:  # local queue full: let deliveries drain it
                    await asyncio.to_thread(poll, 0.05)
                except KafkaException as exc:
                    raise DeliveryFailed(f"{topic}: {exc}") from exc
        left = await asyncio.to_thread(self._producer.flush, self._timeout)
        if errors:
            raise DeliveryFailed(f"{len(errors)} records not acknowledged, first: {errors[0]}")
        if left:
            raise DeliveryFailed(f"{left} records not acknowledged within {self._timeout:.0f}s")
        missing = sum(1 for r in results if r is None)
        if missing:
            raise DeliveryFailed(f"{missing} records without a delivery report")
        return [r for r in results if r is not None]

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
