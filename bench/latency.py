"""End-to-end latency at a fixed offered rate.

Records are produced at ``rate`` per second with an explicit CreateTime (the wall
clock at produce), and the output topics are read from their current end. An output's
latency is its own Kafka timestamp (CreateTime, set by the system's producer when it
sent it) minus the timestamp of the input record named by its ``cause_event_id``. So
it covers producer batching, broker, fetch, the system's batching and processing, and
its output producer — what a downstream consumer sees, minus its own fetch.

Only tier changes, offers and alerts carry a cause; dead letters are not counted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from bench.data import read_records
from schemas.events import OUTPUT_TOPICS, TOPIC_DEAD_LETTERS
from streams.settings import Settings
from streams.tools.loader import TokenBucket, producer_config

_DECISION_TOPICS = [t for t in OUTPUT_TOPICS if t != TOPIC_DEAD_LETTERS]


@dataclass
class Latency:
    name: str
    offered_rate: float
    achieved_rate: float
    seconds: float
    inputs: int
    samples: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class _OutputCollector(threading.Thread):
    """Reads the decision topics from their end; keeps (cause_event_id, timestamp)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.seen: list[tuple[str, int]] = []
        self.last_arrival = time.monotonic()
        self._halt = threading.Event()
        self.ready = threading.Event()
        self.c = Consumer(
            settings.confluent_config(
                **{
                    "group.id": f"bench-latency-{time.monotonic_ns()}",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 10,
                }
            )
        )

    def run(self) -> None:
        c = self.c
        tps: list[TopicPartition] = []
        for t in _DECISION_TOPICS:
            full = self.settings.topic(t)
            meta = c.list_topics(full, timeout=10).topics[full]
            tps.extend(TopicPartition(full, p, OFFSET_END) for p in meta.partitions)
        c.assign(tps)
        # make sure the OFFSET_END positions are resolved before inputs start
        c.poll(0.5)
        self.ready.set()
        while not self._halt.is_set():
            for msg in c.consume(500, 0.1):
                if msg.error():
                    continue
                cause = orjson.loads(msg.value()).get("cause_event_id")
                if cause:
                    self.seen.append((cause, msg.timestamp()[1]))
                    self.last_arrival = time.monotonic()
        c.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(15)


def _pct(xs: list[float], q: float) -> float:
    i = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[i]


def offered_load(
    name: str,
    settings: Settings,
    data: Path,
    start: int,
    available: int,
    rate: float,
    duration: float,
) -> Latency:
    """Produce records ``start``.. of ``data`` at ``rate``/s for ``duration`` s."""
    collector = _OutputCollector(settings)
    collector.start()
    collector.ready.wait(30)
    prod = Producer(producer_config(settings))
    sent_at: dict[str, int] = {}
    bucket = TokenBucket(rate)
    limit = min(available, int(rate * duration))
    t0 = time.monotonic()
    n = 0
    for rec in read_records(data, start, limit):
        bucket.take()
        now_ms = int(time.time() * 1000)
        ev_id = orjson.loads(rec.value)["event_id"]
        sent_at.setdefault(ev_id, now_ms)  # a simulated redelivery keeps the first
        while True:
            try:
                prod.produce(
                    settings.topic(rec.topic), key=rec.key, value=rec.value, timestamp=now_ms
                )
                break
            except BufferError:
                prod.poll(0.05)
        n += 1
        if n % 100 == 0:
            prod.poll(0)
    prod.flush(30)
    elapsed = time.monotonic() - t0
    # drain: outputs still in flight; stop after 3 quiet seconds (at most 30 s)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and time.monotonic() - collector.last_arrival < 3:
        time.sleep(0.2)
    collector.stop()
    lat = sorted(float(ts - sent_at[cause]) for cause, ts in collector.seen if cause in sent_at)
    return Latency(
        name=name,
        offered_rate=rate,
        achieved_rate=n / elapsed if elapsed > 0 else 0.0,
        seconds=elapsed,
        inputs=n,
        samples=len(lat),
        p50_ms=_pct(lat, 0.50) if lat else None,
        p99_ms=_pct(lat, 0.99) if lat else None,
        max_ms=lat[-1] if lat else None,
    )
