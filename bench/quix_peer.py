"""Peer: the same pipeline written the way a Quix Streams user would write it.

    four input topics -> ``concat`` (Quix aligns them by message timestamp)
    -> ``apply(stateful=True)``: decode (schemas.decoder) + state.core.apply per event,
       state in Quix's RocksDB store (its changelog topic on) as the core's bytes
    -> ``to_topic`` with a per-record topic choice (tier changes, offers, alerts,
       dead letters)
    -> a sink whose ``flush`` (run at every Quix checkpoint, before the offset commit)
       writes the changed customers' Redis profiles with the same Lua upsert as
       streams.redis_sink, pipelined.

The commit interval is 1 s like the worker's. Not the same: Quix aligns inputs by the
Kafka timestamp, not the event time the worker's aligner uses (on the benchmark data
the two orders agree closely; decisions may differ for late records).

Run as a subprocess by bench.run; progress goes to ``--status``; runs until SIGTERM.
With ``--seed-states`` it only writes a bank's states into its changelog, the way
Quix restores its store (bench/restore.py), and exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import redis
from quixstreams import Application, message_context
from quixstreams.models.serializers import Serializer
from quixstreams.sinks import BaseSink
from quixstreams.state.rocksdb import RocksDBOptions

from bench.baseline import write_status
from schemas.dead_letter import dead_letter_record
from schemas.decoder import Decoder
from schemas.events import INPUT_TOPICS, OUTPUT_TOPICS, TOPIC_AUDIT, TOPIC_DEAD_LETTERS
from state.core import CoreError, apply
from state.customer import CustomerState
from state.profile import profile_fields
from state.rules import Rules, load_rules
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.records import RawMessage
from streams.redis_functions import FN_UPSERT
from streams.redis_sink import upsert_calls
from streams.settings import Settings

_STATE_KEY = b"s"


class _RecordValue(Serializer):
    """Outputs flow as (topic, key, value bytes); the wire value is the bytes."""

    def __call__(self, value: Any, ctx: Any) -> bytes:
        return bytes(value[2])


class ProfileSink(BaseSink):
    """Writes the profiles of customers changed since the last checkpoint.

    ``add`` is fed the output records (ignored); the processing function marks changed
    customers in ``dirty`` directly, because a Quix branch per event would copy the
    state object for each branch.
    """

    def __init__(self, client: redis.Redis, prefix: str, rules: Rules) -> None:
        super().__init__()
        self.dirty: dict[bytes, CustomerState] = {}
        self.rules = rules
        self.prefix = prefix
        self.client = client

    def add(self, *args: Any, **kwargs: Any) -> None:
        return None

    def flush(self) -> None:
        if not self.dirty:
            return
        rules = self.rules
        profiles = {key: profile_fields(st, rules) for key, st in self.dirty.items()}
        pipe = self.client.pipeline(transaction=False)
        for keys, args in upsert_calls(self.prefix, profiles):
            pipe.fcall(FN_UPSERT, len(keys), *keys, *args)
        pipe.execute()
        self.dirty.clear()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic-prefix", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--redis-prefix", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--status", required=True, type=Path)
    ap.add_argument(
        "--seed-states",
        type=Path,
        help="produce a bank's states (bench/bank.py) to this app's changelog in Quix's "
        "format, then exit; the next run with the same group restores them",
    )
    ap.add_argument("--partitions", type=int, default=8, help="partitions (with --seed-states)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    settings = Settings(kafka_bootstrap=args.bootstrap, topic_prefix=args.topic_prefix)
    rules = load_rules(None)
    processor = BatchProcessor(rules, Decoder(max_future_skew_ms=5 * 60 * 1000))
    consumed = 0
    running = threading.Event()
    running.set()

    def on_processed(topic: str, partition: int, offset: int) -> None:
        nonlocal consumed
        consumed += 1

    def report_progress() -> None:
        # on a timer, not per event: an idle peer must still report its last count
        last = -1
        while running.is_set():
            if consumed != last:
                last = consumed
                write_status(args.status, {"consumed": last})
            time.sleep(0.1)

    reporter = threading.Thread(target=report_progress, daemon=True)
    reporter.start()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        state_dir=args.state_dir,
        rocksdb_options=RocksDBOptions(dumps=_dumps, loads=bytes),
        producer_extra_config={"partitioner": "murmur2_random", "linger.ms": 5},
        on_message_processed=on_processed,
        loglevel="WARNING",
        use_changelog_topics=True,
    )
    contract = {settings.topic(t): t for t in INPUT_TOPICS}
    inputs = [
        app.topic(settings.topic(t), key_deserializer="bytes", value_deserializer="bytes")
        for t in _non_empty(settings)
    ]
    outputs = {
        t: app.topic(settings.topic(t), key_serializer="bytes", value_serializer=_RecordValue())
        for t in (*OUTPUT_TOPICS, TOPIC_AUDIT)  # the core audits tier overrides
    }
    sink = ProfileSink(redis.Redis.from_url(args.redis_url), args.redis_prefix, rules)

    def process(value: bytes, key: bytes, timestamp: int, headers: Any, state: Any) -> list[Any]:
        ctx = message_context()
        raw = RawMessage(
            contract[ctx.topic], ctx.partition, ctx.offset, key, value, timestamp, ctx.topic
        )
        decoded = processor.decode(raw, int(time.time() * 1000))
        if decoded.event is None:
            assert decoded.error is not None
            return [_dead(raw, decoded.error.describe())]
        stored = state.get(_STATE_KEY)
        st = CustomerState.from_bytes(stored) if stored is not None else None
        try:
            outcome = apply(st, decoded.event, rules)  # type: ignore[arg-type]  # inputs only
        except CoreError as err:
            return [_dead(raw, f"$.{err.field}: {err.reason}")]
        if outcome.status == "duplicate":
            return []
        state.set(_STATE_KEY, outcome.state.to_bytes())
        sink.dirty[key] = outcome.state
        return [(d.topic, key, orjson.dumps(d.to_record())) for d in outcome.decisions]

    sdf = app.dataframe(inputs[0])
    for t in inputs[1:]:
        sdf = sdf.concat(app.dataframe(t))
    sdf = sdf.apply(process, stateful=True, metadata=True, expand=True)
    # Quix gives outputs the input's timestamp; stamp them when produced, like the
    # worker's and the baseline's producers do, so the latency phase measures the same.
    sdf = sdf.set_timestamp(lambda value, key, ts, headers: int(time.time() * 1000))
    sdf.to_topic(lambda value, key, ts, headers: outputs[value[0]], key=lambda r: r[1])
    sdf.sink(sink)
    if args.seed_states is not None:
        seed_changelog(app, settings, args.seed_states, args.partitions, args.status)
        running.clear()
        return 0

    def on_term(signum: int, frame: object) -> None:
        app.stop()

    signal.signal(signal.SIGTERM, on_term)
    app.run()
    running.clear()
    reporter.join(5)
    write_status(args.status, {"consumed": consumed, "done": True})
    return 0


def seed_changelog(
    app: Application, settings: Settings, states: Path, partitions: int, status: Path
) -> None:
    """Put a bank's states where Quix restores its store from (bench/restore.py).

    The stateful ``apply`` registered one store, and with it one changelog topic (Quix
    names it after the consumer group, the stream and the store, and creates it when
    the store is registered). Each state becomes the record Quix's own transaction
    would write for ``state.set(_STATE_KEY, value)`` on the customer's message: key
    ``<customer key>|s``, the value as stored, header ``__column_family__: default``;
    no processed-offsets header, so recovery applies it whatever the input offsets.
    """
    from bench.restore import produce_states

    topics = app._topic_manager.changelog_topics_list  # Quix names it; ask it
    if len(topics) != 1:
        raise RuntimeError(f"expected one Quix changelog topic, got {[t.name for t in topics]}")
    headers = [("__column_family__", b"default")]

    def shape(key: bytes, value: bytes, partition: int) -> tuple[bytes, bytes, int, list[Any]]:
        return key + b"|" + _STATE_KEY, value, partition, headers

    done = produce_states(settings, topics[0].name, states, partitions, shape)
    write_status(
        status,
        {"seeded": done.records, "seed_s": done.seconds, "changelog": topics[0].name},
    )


def _non_empty(settings: Settings) -> list[str]:
    """Input topics holding records now.

    Quix's time alignment of concatenated topics holds every partition back while
    another one's high watermark is unknown, which it stays for an empty topic (e.g.
    an input the simulator does not write): the peer would stall. So it reads the
    inputs that have data, which on the benchmark's data is all it needs.
    """
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(settings.confluent_config(**{"group.id": "bench-peer-probe"}))
    try:
        out = []
        for t in INPUT_TOPICS:
            full = settings.topic(t)
            meta = c.list_topics(full, timeout=10).topics[full]
            if any(
                c.get_watermark_offsets(TopicPartition(full, p), timeout=10)[1] > 0
                for p in meta.partitions
            ):
                out.append(t)
        return out
    finally:
        c.close()


def _dumps(value: Any) -> bytes:
    """State values are the core's bytes, stored as they are (Quix would JSON them)."""
    return value if isinstance(value, bytes) else orjson.dumps(value)


def _dead(raw: RawMessage, error: str) -> tuple[str, bytes | None, bytes]:
    record = dead_letter_record(
        raw.source_topic, raw.partition, raw.offset, raw.key, raw.value, error, raw.timestamp_ms
    )
    return (TOPIC_DEAD_LETTERS, raw.key, orjson.dumps(record))


if __name__ == "__main__":
    raise SystemExit(main())
