"""Changelog recovery time: how long a fresh worker needs before it can process.

N synthetic changelog records (key = customer id, value = a typical serialized
``CustomerState``) go into a fresh app id's ``<app_id>-customer-state-changelog``
(partitioned by murmur2 of the key, like the worker's own changelog writes). A worker
with that app id and an empty data directory then starts, and the figure is the time
from process start until ``GET /health`` shows ``"recovering": false`` with
``assigned_partitions > 0``. The same start with an empty changelog is measured too,
so start-up (imports, faust boot, group join) can be told apart from restoring.

The inputs of this phase are separate, empty topics: the worker has nothing else to do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer

from bench.bank import read_states
from bench.common import BenchError, http_text, metric_sum
from bench.worker_bench import Worker, wait_ready, worker_state_bytes
from schemas.decoder import Decoder
from state.core import apply
from state.customer import CustomerState
from state.rules import load_rules
from streams.settings import Settings
from streams.tools.simulator import SimConfig, Simulator
from streams.topics import changelog_topic, create_topics

_TEMPLATE_ID = "C0000000"


@dataclass
class Recovery:
    customers: int
    produce_s: float
    changelog_bytes: int
    ready_s: float  # process start -> recovered and assigned
    restored: int | None  # keys found in the worker's RocksDB afterwards
    bulk_records: int | None = None  # of which read by the bulk restore (worker metric)
    bulk_s: float | None = None  # time in the bulk restore (worker metric)


def typical_state(bank_states: Path | None = None) -> bytes:
    """A median-sized state: of a bank with history (bench/bank.py) when given, else of
    a few simulated days applied with the core."""
    if bank_states is not None:
        blobs = sorted((v for _k, v in read_states(bank_states)), key=len)
        return _as_template(blobs[len(blobs) // 2])
    rules = load_rules(None)
    decoder = Decoder()
    states: dict[bytes, CustomerState] = {}
    for rec in Simulator(SimConfig(customers=200, seed=5)).records(limit=6000):
        ev = decoder.decode(rec.topic, rec.value, None)
        if hasattr(ev, "customer_id"):
            with_state = states.get(rec.key)
            states[rec.key] = apply(with_state, ev, rules).state  # type: ignore[arg-type]
    blobs = sorted((s.to_bytes() for s in states.values()), key=len)
    return _as_template(blobs[len(blobs) // 2])


def _as_template(median: bytes) -> bytes:
    """The state with its customer id replaced by the template's (same length)."""
    cid = CustomerState.from_bytes(median).customer_id
    if len(cid) != len(_TEMPLATE_ID):
        raise BenchError(f"unexpected simulator customer id {cid!r}")
    return median.replace(cid.encode(), _TEMPLATE_ID.encode())


def fill_changelog(settings: Settings, customers: int, template: bytes) -> tuple[float, int]:
    prod = Producer(settings.producer_config(**{"compression.type": "lz4", "linger.ms": 20}))
    topic = changelog_topic(settings)
    started = time.monotonic()
    tid = _TEMPLATE_ID.encode()
    size = 0
    for i in range(customers):
        key = f"C{i:07d}".encode()
        value = template.replace(tid, key)
        size += len(value)
        while True:
            try:
                prod.produce(topic, key=key, value=value)
                break
            except BufferError:
                prod.poll(0.05)
        if i % 1000 == 0:
            prod.poll(0)
    if prod.flush(120) != 0:
        raise BenchError("changelog records not delivered within 120 s")
    return time.monotonic() - started, size


def measure_recovery(
    settings: Settings, customers: int, template: bytes, log_dir: Path, timeout: float
) -> Recovery:
    """``settings`` must name a fresh app id, topic prefix and data directory."""
    create_topics(settings)
    produce_s, size = fill_changelog(settings, customers, template) if customers else (0.0, 0)
    worker = Worker(settings, log_dir / f"recovery-{customers}.log")
    started = time.monotonic()
    worker.start()
    try:
        wait_ready(worker, timeout, expect_recovery=customers > 0)
        ready_s = time.monotonic() - started
        metrics = http_text(worker.url + "/metrics")
    finally:
        worker.stop()
    _avg, _disk, restored = worker_state_bytes(Path(settings.data_dir), customers)
    return Recovery(
        customers,
        produce_s,
        size,
        ready_s,
        restored,
        bulk_records=int(metric_sum(metrics, "tierstream_changelog_restored_records_total")),
        bulk_s=metric_sum(metrics, "tierstream_changelog_restore_seconds_total"),
    )
