"""Baseline: the same pipeline with no framework — the practical limit for Python here.

    confluent-kafka consume (batches of up to 1000) -> streams.pipeline.processor.BatchProcessor
    (the same decode + pure core + event-time merge within the batch) -> produce outputs
    and wait for the acks -> Redis profiles through streams.redis_sink.RedisProfileSink
    (the same Lua upsert, pipelined per batch) -> state into a dict -> commit offsets.

With ``--restore-topic`` it first reads a bank's states from a topic into its dict
(bench/restore.py: how each system gets the same states).

It runs the worker's processing with the worker's state cache and garbage
collector settings, and keeps the worker's at-least-once order (outputs acked and
profiles written before the offsets are committed), so the gap to the worker is
framework overhead, not a weaker guarantee or a different setting. State lives in a
plain dict of the core's serialized bytes (no RocksDB, no changelog): that is the
one thing the baseline gets for free.

Run as a subprocess by bench.run (so its CPU and RSS are its own); it writes its
progress to ``--status`` a few times a second and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from schemas.decoder import Decoder
from schemas.events import INPUT_TOPICS
from state.rules import load_rules
from streams.metrics import Metrics
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.records import RawMessage
from streams.pipeline.state_cache import DEFAULT_CAPACITY, StateCache
from streams.redis_sink import RedisProfileSink, connect
from streams.settings import Settings
from streams.worker.gc_tuning import tune_gc


def write_status(path: Path, status: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic-prefix", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--redis-prefix", required=True)
    ap.add_argument("--status", required=True, type=Path)
    ap.add_argument("--no-redis", action="store_true", help="skip the Redis profile writes")
    ap.add_argument(
        "--restore-topic",
        help="a topic of (customer key, state) records read into the state dict first",
    )
    ap.add_argument(
        "--state-cache",
        type=int,
        default=DEFAULT_CAPACITY,
        help="decoded states kept between batches (the worker's default)",
    )
    args = ap.parse_args()

    settings = Settings(
        kafka_bootstrap=args.bootstrap,
        topic_prefix=args.topic_prefix,
        redis_url=args.redis_url,
        redis_key_prefix=args.redis_prefix,
    )
    contract = {settings.topic(t): t for t in INPUT_TOPICS}
    out_names: dict[str, str] = {}
    rules = load_rules(None)
    # the worker's processing, cache and GC settings: the baseline differs only in
    # having no framework, no changelog and no consumer-group machinery around them
    processor = BatchProcessor(
        rules,
        Decoder(max_future_skew_ms=5 * 60 * 1000),
        cache=StateCache(args.state_cache) if args.state_cache else None,
    )
    consumer = Consumer(
        settings.confluent_config(
            **{
                "group.id": args.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
    )
    producer = Producer(settings.producer_config())
    loop = asyncio.new_event_loop()
    sink = None
    if not args.no_redis:
        sink = RedisProfileSink(connect(settings.redis_url), settings.redis_key_prefix, Metrics())
    states: dict[bytes, bytes] = {}
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    restored, restore_s = (
        restore_states(settings, args.restore_topic, states) if args.restore_topic else (0, 0.0)
    )
    write_status(args.status, {"consumed": 0, "restored": restored, "restore_s": restore_s})
    consumer.subscribe(list(settings.input_topics))
    tune_gc()
    consumed = 0
    next_status = 0.0
    load = lambda _p, key: states.get(key)  # noqa: E731 - the BatchProcessor loader
    while not stop:
        msgs = consumer.consume(1000, 0.05)
        if msgs:
            now_ms = int(time.time() * 1000)
            raws = []
            for m in msgs:
                if m.error():
                    continue
                full = m.topic()
                raws.append(
                    RawMessage(
                        contract[full],
                        m.partition(),
                        m.offset(),
                        m.key(),
                        m.value(),
                        m.timestamp()[1],
                        full,
                    )
                )
            result = processor.process(raws, load, now_ms)
            for o in result.outputs:
                topic = out_names.get(o.topic)
                if topic is None:
                    topic = out_names[o.topic] = settings.topic(o.topic)
                while True:
                    try:
                        producer.produce(topic, key=o.key, value=o.value)
                        break
                    except BufferError:
                        producer.poll(0.05)
            if result.outputs and producer.flush(30) != 0:
                raise RuntimeError("baseline: outputs not acknowledged within 30 s")
            if sink is not None:
                loop.run_until_complete(sink.write(result.profiles))
            for _partition, key, value in result.states:
                states[key] = value
            consumer.commit(asynchronous=True)
            consumed += len(raws)
        now = time.monotonic()
        if now >= next_status:
            write_status(
                args.status,
                {"consumed": consumed, "restored": restored, "restore_s": restore_s}
                | _cache_counts(processor),
            )
            next_status = now + 0.1
    total = sum(len(v) for v in states.values())
    write_status(
        args.status,
        {
            "consumed": consumed,
            "customers": len(states),
            "state_bytes_per_customer": total / len(states) if states else None,
            "restored": restored,
            "restore_s": restore_s,
            "done": True,
        }
        | _cache_counts(processor),
    )
    consumer.close()
    return 0


def _cache_counts(processor: BatchProcessor) -> dict[str, object]:
    cache = processor.cache
    return {} if cache is None else {"cache_hits": cache.hits, "cache_misses": cache.misses}


def restore_states(settings: Settings, topic: str, states: dict[bytes, bytes]) -> tuple[int, float]:
    """Read every (customer key, state) record of ``topic`` into ``states`` (the
    baseline's way to start from a bank with history: it has no changelog of its
    own); returns (records read, seconds)."""
    started = time.monotonic()
    c = Consumer(
        settings.confluent_config(**{"group.id": f"{topic}-restore", "enable.auto.commit": False})
    )
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        ends = {}
        for p in meta.partitions:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        n = 0
        while ends:
            for m in c.consume(10_000, 1.0):
                if m.error():
                    raise RuntimeError(f"restoring from {topic}: {m.error()}")
                key, value = m.key(), m.value()
                if key is not None:
                    if value is None:
                        states.pop(key, None)
                    else:
                        states[key] = value
                n += 1
                p = m.partition()
                if p in ends and m.offset() + 1 >= ends[p]:
                    del ends[p]
    finally:
        c.close()
    return n, time.monotonic() - started


if __name__ == "__main__":
    raise SystemExit(main())
