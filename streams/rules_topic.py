"""The ``rules`` topic on Kafka: reading its history and publishing a version.

What counts in the topic is decided in streams/rules_log.py (pure); this module is the
I/O around it, shared by ``tierstream rules ...``, ``tierstream backtest`` and the
worker (streams/worker/rules_gate.py reads it incrementally with ``RulesReader``).

Publishing (``publish``) validates the file with the start-up loader, refuses a
version that was published before and an ``effective_from`` in the past, writes the
record to partition 0 with ``acks=all``, reads the topic back to see what every reader
will make of it (the broker's append time decides whether it is backdated), and then
writes an ``audit`` record (action ``rules.publish``).
"""

from __future__ import annotations

import getpass
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from schemas.events import TOPIC_RULES
from schemas.timefmt import format_ts_utc
from state.rules import Rules, load_rules_text
from streams import audit
from streams.rules_log import (
    CLOCK_MARGIN_MS,
    Entry,
    RulesHistory,
    RulesRecord,
    accept,
    encode_record,
)
from streams.settings import Settings

__all__ = [
    "DEFAULT_LEAD_MS",
    "PublishError",
    "PublishResult",
    "RulesReader",
    "publish",
    "read_history",
]

#: How long after the publishing command's clock a version takes effect by default
#: ("the publish time"): the clock margin twice (the publisher's clock and the
#: broker's may each be off by it) and a second for the record to reach the broker.
DEFAULT_LEAD_MS = 2 * CLOCK_MARGIN_MS + 1000


#: Errors of a partition without a leader for the moment: asked again.
_LEADER_MOVING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


class PublishError(RuntimeError):
    """The version cannot be published (the message says why; nothing was written)."""


class RulesReader:
    """Reads the rules topic from the beginning, as far as asked (no consumer group:
    every reader reads every partition, whoever owns what)."""

    def __init__(self, settings: Settings, read_committed: bool = True) -> None:
        self.topic = settings.topic(TOPIC_RULES)
        self._config = settings.confluent_config(
            **{
                "group.id": f"tierstream-rules-reader-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed" if read_committed else "read_uncommitted",
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer: Consumer | None = None
        self.partitions: list[int] = []
        #: partition -> next offset to read
        self.positions: dict[int, int] = {}
        #: (partition, offset, broker timestamp ms, value) of every record read
        self.messages: list[tuple[int, int, int, bytes | None]] = []
        #: whether every record read carried the broker's append time (LogAppendTime)
        self.log_append_time = True

    def _open(self, timeout: float) -> Consumer:
        if self._consumer is None:
            consumer = Consumer(self._config)
            meta = consumer.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                consumer.close()
                raise KafkaException(
                    KafkaError(
                        KafkaError.UNKNOWN_TOPIC_OR_PART,
                        f"topic {self.topic} not found: run `tierstream topics create`",
                    )
                )
            self.partitions = sorted(meta.partitions)
            consumer.assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in self.partitions]
            )
            self.positions = dict.fromkeys(self.partitions, 0)
            self._consumer = consumer
        return self._consumer

    def end_offsets(self, timeout: float = 10.0) -> dict[int, int]:
        """The partitions' end offsets now (high watermarks). A partition whose leader
        is moving (a topic just created, a broker restarting) is asked again until
        ``timeout``; other errors, and that one past the timeout, raise."""
        consumer = self._open(timeout)
        deadline = time.monotonic() + timeout
        ends: dict[int, int] = {}
        for p in self.partitions:
            while True:
                left = max(0.1, deadline - time.monotonic())
                try:
                    ends[p] = consumer.get_watermark_offsets(
                        TopicPartition(self.topic, p), timeout=left
                    )[1]
                    break
                except KafkaException as exc:
                    code = exc.args[0].code() if exc.args else None
                    if code not in _LEADER_MOVING or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.2)
        return ends

    def caught_up(self, ends: dict[int, int]) -> bool:
        return all(self.positions.get(p, 0) >= end for p, end in ends.items())

    def read_until(self, ends: dict[int, int], timeout: float) -> bool:
        """Read until every partition reached its end in ``ends`` (or ``timeout``
        seconds passed); returns whether it did. Blocking: call it off the event loop."""
        consumer = self._open(timeout)
        deadline = time.monotonic() + timeout
        while not self.caught_up(ends):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for msg in consumer.consume(500, min(left, 0.2)):
                self._take(msg)
            # an end offset can sit past the last record (a transaction marker, or
            # compaction): the consumer's position says when everything was read
            for tp in consumer.position([TopicPartition(self.topic, p) for p in self.partitions]):
                if tp.offset is not None and tp.offset >= 0:
                    self.positions[tp.partition] = max(self.positions[tp.partition], tp.offset)
        return True

    def _take(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return
            raise KafkaException(err)
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        kind, ts = msg.timestamp()
        if kind != TIMESTAMP_LOG_APPEND_TIME:
            self.log_append_time = False
        self.messages.append((partition, offset, int(ts), msg.value()))
        self.positions[partition] = max(self.positions.get(partition, 0), offset + 1)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def read_history(settings: Settings, base: Rules, timeout: float = 30.0) -> RulesHistory:
    """The topic's history up to its end offsets at the call."""
    reader = RulesReader(settings)
    try:
        ends = reader.end_offsets()
        if not reader.read_until(ends, timeout):
            raise KafkaException(
                KafkaError(
                    KafkaError._TIMED_OUT, f"could not read {reader.topic} within {timeout}s"
                )
            )
        return accept(reader.messages, base)
    finally:
        reader.close()


@dataclass
class PublishResult:
    record: RulesRecord
    entry: Entry  # what every reader makes of it (status accepted / refused)
    history: RulesHistory  # after it


def default_publisher() -> str:
    """``--by``'s default: the operating-system user."""
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (some containers)
        return os.environ.get("USER") or f"uid-{os.getuid()}"


def publish(
    settings: Settings,
    toml_text: str,
    source: str,
    *,
    label: str = "",
    effective_from: int | None = None,
    by: str | None = None,
    clock: Callable[[], float] = time.time,
) -> PublishResult:
    """Publish a rules file (see the module doc). Raises ``ValueError`` for rules that
    do not load (the start-up loader's message), ``PublishError`` for a version that
    cannot be published, ``KafkaException`` when Kafka fails."""
    rules = load_rules_text(toml_text, source)
    version = rules.version
    if len(version) > 64:
        raise PublishError(f"version {version!r} is longer than 64 characters")
    publisher = by or default_publisher()
    if not 0 < len(publisher) <= 64 or any(ord(c) < 32 or ord(c) == 127 for c in publisher):
        raise PublishError(f"--by must be 1..64 printable characters, got {publisher!r}")
    before = read_history(settings, rules)
    earlier = [e for e in before.entries if e.version == version and e.status != "refused"]
    if earlier:
        e = earlier[0]
        raise PublishError(
            f"version {version!r} was published before (offset {e.offset}, {e.status}); "
            "a version takes effect once: give the changed rules a new `version` (to go "
            "back to earlier rules too)"
        )
    now = int(clock() * 1000)
    if effective_from is None:
        effective_from = now + DEFAULT_LEAD_MS
    elif effective_from < now:
        raise PublishError(
            f"--effective-from {format_ts_utc(effective_from)} lies in the past (now "
            f"{format_ts_utc(now)}): a version may not decide events already decided; "
            "publish it to take effect now (leave --effective-from out) or later"
        )
    elif effective_from < now + DEFAULT_LEAD_MS:
        raise PublishError(
            f"--effective-from {format_ts_utc(effective_from)} is less than "
            f"{DEFAULT_LEAD_MS} ms from now: too close for the clock margin; leave it out "
            "to take effect as soon as possible"
        )
    record = RulesRecord(
        version=version,
        label=label,
        effective_from=effective_from,
        published_by=publisher,
        published_at=now,
        toml=toml_text,
    )
    key, value = encode_record(record)
    partition, offset = _produce(settings, settings.topic(TOPIC_RULES), key, value, 0)
    after = read_history(settings, rules)
    entry = next(e for e in after.entries if (e.partition, e.offset) == (partition, offset))
    _audit(settings, record, entry)
    return PublishResult(record, entry, after)


def _produce(
    settings: Settings, topic: str, key: bytes, value: bytes, partition: int | None
) -> tuple[int, int]:
    """One record, acknowledged by all in-sync replicas: its (partition, offset)."""
    producer = Producer(settings.producer_config(**{"linger.ms": 0}))
    got: list[Any] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        got.append(err if err is not None else (msg.partition(), msg.offset()))

    kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
    if partition is not None:
        kwargs["partition"] = partition
    producer.produce(topic, **kwargs)
    left = producer.flush(30)
    if left or not got:
        raise KafkaException(
            KafkaError(KafkaError._TIMED_OUT, f"{topic}: not acknowledged in 30 s")
        )
    if isinstance(got[0], KafkaError):
        raise KafkaException(got[0])
    return int(got[0][0]), int(got[0][1])


def _audit(settings: Settings, record: RulesRecord, entry: Entry) -> None:
    """The audit trail of the publication (streams/audit.py, acknowledged by all)."""
    audit.write_record(
        settings,
        audit.rules_publish(
            record.published_by,
            entry.status == "accepted",
            record.version,
            format_ts_utc(record.effective_from),
            record.label,
            entry.offset,
        ),
        audit.audit_timeout(settings),
    )
