"""Each system gets the bank's states its own way, through Kafka, before the live phase.

The states of a bank with history (bench/bank.py) are what the systems start from:

* **the worker** restores them as it would after losing its disk: they are produced to
  its app id's changelog topic (``<app_id>-customer-state-changelog``, the partition
  of each customer's inputs), and the worker, started on an empty data directory,
  copies them into RocksDB with its bulk recovery
  (streams/worker/faust_glue/recovery.py) before it consumes any input;
* **the baseline** has no changelog: it reads them from a compacted topic of states
  (``<prefix>bank-states``, the same records) into its dict with a plain
  confluent-kafka consumer before it consumes (bench/baseline.py ``--restore-topic``);
* **the Quix peer** restores them with Quix's own changelog recovery: they are
  produced to the changelog topic Quix derives for its consumer group and state
  store, in Quix's record format (key ``<message key>|<state key>``, header
  ``__column_family__: default``, no processed-offset header so recovery applies
  them), and Quix's recovery manager reads them into its RocksDB store when it is
  assigned the partitions (bench/quix_peer.py ``--seed-states``).

Every state goes to the partition of its customer's inputs: murmur2 of the customer
key (Kafka's Java partitioner, which the inputs are produced with).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka.partitioner import murmur2
from confluent_kafka import Producer

from bench.bank import read_states
from bench.common import BenchError
from streams.settings import Settings

#: (key, value, partition, headers) of one record, from a customer key and its state.
RecordShape = Callable[[bytes, bytes, int], tuple[bytes, bytes, int, list[tuple[str, bytes]]]]


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java client (and librdkafka's ``murmur2_random``) gives a
    non-empty key: positive murmur2 modulo the partition count."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def as_is(
    key: bytes, value: bytes, partition: int
) -> tuple[bytes, bytes, int, list[tuple[str, bytes]]]:
    return key, value, partition, []


@dataclass
class Produced:
    records: int
    bytes: int
    seconds: float


def produce_states(
    settings: Settings,
    topic: str,
    states: Path,
    partitions: int,
    shape: RecordShape = as_is,
) -> Produced:
    """Produce every state of a bank's states file to ``topic``, acknowledged."""
    prod = Producer(settings.producer_config(**{"compression.type": "lz4", "linger.ms": 20}))
    started = time.monotonic()
    n = size = 0
    for customer, value in read_states(states):
        key, val, partition, headers = shape(customer, value, partition_for(customer, partitions))
        size += len(val)
        while True:
            try:
                prod.produce(topic, key=key, value=val, partition=partition, headers=headers)
                break
            except BufferError:
                prod.poll(0.05)
        n += 1
        if n % 1000 == 0:
            prod.poll(0)
    if prod.flush(300) != 0:
        raise BenchError(f"states for {topic} not delivered within 300 s")
    return Produced(n, size, time.monotonic() - started)
