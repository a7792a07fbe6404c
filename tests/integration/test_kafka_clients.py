"""The worker's own Kafka clients on the real broker: end offsets and acked batches."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.worker.acked_producer import AckedProducer, DeliveryFailed
from streams.worker.end_offsets import EndOffsets
from tests.conftest import MakeTopics


def test_acked_batches_report_offsets_and_end_offsets_see_them(
    kafka_bootstrap: str, unique_prefix: str, make_topics: MakeTopics
) -> None:
    topic = f"{unique_prefix}acked"
    make_topics([topic], partitions=3)
    producer = AckedProducer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    ends = EndOffsets({"bootstrap.servers": kafka_bootstrap}, read_committed=False)

    async def run() -> tuple[list[tuple[int, int]], dict[tuple[str, int], int]]:
        records = [(topic, f"k{i}".encode(), f"v{i}".encode(), i % 3) for i in range(30)]
        delivered = await producer.send_all(records)
        return delivered, await ends.get([(topic, p) for p in range(3)])

    delivered, end = asyncio.run(run())
    # each record's own partition, offsets in send order per partition
    assert [p for p, _ in delivered] == [i % 3 for i in range(30)]
    for p in range(3):
        assert [o for q, o in delivered if q == p] == list(range(10))
    assert end == {(topic, 0): 10, (topic, 1): 10, (topic, 2): 10}

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"{unique_prefix}g",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 1, 0)])
        got = [m.value() for m in consumer.consume(10, timeout=10)]
    finally:
        consumer.close()
    assert got == [f"v{i}".encode() for i in range(1, 30, 3)]


def test_a_record_the_broker_refuses_fails_the_whole_batch(
    kafka_bootstrap: str, unique_prefix: str, make_topics: MakeTopics
) -> None:
    """The broker itself refuses the record (the topic's max.message.bytes), not the
    client's own size check: the delivery report carries the broker's error, and the
    batch fails naming it."""
    topic, control = f"{unique_prefix}small", f"{unique_prefix}control"
    make_topics([topic], partitions=1, config={"max.message.bytes": "1024"})
    make_topics([control], partitions=1)
    producer = AckedProducer({"bootstrap.servers": kafka_bootstrap, "acks": "all"}, timeout=20)
    too_big = b"x" * 4096  # far below the client's limit (1 MB), above the topic's
    # the client sends it (librdkafka names its own size check with the same error
    # code, so the text alone would not tell): a topic without the limit takes it
    assert asyncio.run(producer.send_all([(control, b"k", too_big, 0)])) == [(0, 0)]
    with pytest.raises(DeliveryFailed, match=r"Broker: Message size too large"):
        asyncio.run(producer.send_all([(topic, b"k", b"ok", 0), (topic, b"k", too_big, 0)]))


def test_end_offsets_of_an_unknown_partition_raise(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    ends = EndOffsets({"bootstrap.servers": kafka_bootstrap}, read_committed=True, timeout=5)
    with pytest.raises(Exception):  # noqa: B017 - any failure; the worker then holds (bounded)
        asyncio.run(ends.get([(f"{unique_prefix}does-not-exist", 0)]))
