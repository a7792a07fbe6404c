"""Getting input records onto Kafka: the producing half of ``simulate`` and ``replay``.

This is shell code (it talks to Kafka and reads the clock for rate limiting); what it
produces comes from the pure simulator or from a file read by ``read_replay_file``.
The replay file format is read and written here: ``write_jsonl`` writes the lines of
``tierstream simulate --dry-run`` that ``read_replay_file`` turns back into records.

Choices worth knowing:

- Keys are customer ids and the partitioner is ``murmur2_random``, the Java client's
  murmur2: every input topic has the same partition count, so one customer's events
  land in the same partition number on every topic, and any other producer a bank uses
  (Java, Kafka Connect, faust/aiokafka) places the same key on the same partition.
- ``enable.idempotence`` + ``acks=all``: a retry inside the client never duplicates or
  reorders a customer's events; duplicates in the data are the simulator's on purpose.
- The Kafka message timestamp is the producing time, not the event's ``ts``: simulated
  event time may lie months in the past or future, and brokers apply retention and
  timestamp limits to the message timestamp. Event time travels in the payload.
- Topics are never auto-created: a missing input topic is an error that says to run
  ``tierstream topics create`` (an auto-created topic would get the broker's default
  partition count and break co-partitioning silently).
- A malformed line in a replay file is still produced when we know its topic, so the
  service dead-letters it exactly as it would in production; it is counted and
  reported. A line whose topic cannot be known is skipped (and reported): producing it
  to a guessed topic would misattribute it.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import IO, Any, BinaryIO, Final

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas.events import (
    INPUT_TOPICS,
    TOPIC_ASSESSMENTS,
    TOPIC_PROFILES,
    TOPIC_TICKS,
    TOPIC_TIER_OVERRIDES,
)
from schemas.values import timestamp
from streams.settings import Settings
from streams.tools.simulator import SimRecord, is_bad

#: Envelope fields of a replay line (removed before the event is produced).
TOPIC_FIELD: Final = "topic"
RAW_FIELD: Final = "_raw_b64"  # exact bytes to produce (malformed records from --dry-run)
KEY_FIELD: Final = "_key"  # key for a raw record
LABEL_FIELD: Final = "_bad"  # what kind of malformed record it is (informational)

FLUSH_TIMEOUT_S: Final = 60.0
_POLL_EVERY: Final = 256
_PROGRESS_EVERY_S: Final = 0.2

#: CSV columns that are not strings on the wire (money stays a decimal string: exact).
_CSV_INT_FIELDS: Final = {TOPIC_ASSESSMENTS: frozenset({"score"})}
_CSV_NUMBER_FIELDS: Final = {TOPIC_ASSESSMENTS: frozenset({"investment_experience_years"})}
_CSV_BOOL_FIELDS: Final = {
    TOPIC_PROFILES: frozenset({"marketing_consent", "service_contact_opt_out"})
}
#: Fields whose empty CSV cell means JSON null (a tier override's empty tier clears it).
_CSV_NULL_FIELDS: Final = {TOPIC_TIER_OVERRIDES: frozenset({"tier"})}
_NOT_UTF8: Final = re.compile("[\udc80-\udcff]")  # bytes kept by surrogateescape
_TRUE: Final = frozenset({"true", "1", "yes", "y", "t"})
_FALSE: Final = frozenset({"false", "0", "no", "n", "f"})


class ProduceError(RuntimeError):
    """Records could not be delivered (broker down, topic missing, authorization, ...)."""


class ReplayFileError(ValueError):
    """The replay file as a whole cannot be read (unknown format, CSV without a topic)."""


# --- rate limiting ------------------------------------------------------------------


class TokenBucket:
    """Blocks ``take()`` so that on average at most ``rate`` calls pass per second.

    The bucket holds up to ``burst`` tokens (default: a tenth of a second's worth, at
    least one), so short stalls are caught up without ever exceeding the rate by more
    than one burst.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def take(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        # Sleep until one token has accrued and spend it at that moment. (Re-checking the
        # clock in a loop instead can spin on float rounding: 0.999... never reaches 1.)
        wait = (1.0 - self._tokens) / self.rate
        self._sleep(wait)
        self._tokens = 0.0
        self._last = now + wait


class SimPace:
    """Holds records back so that event time runs at ``days_per_minute`` simulated days
    per wall-clock minute (``simulate --speed``).

    The first record's event time is the origin; each record waits until the wall clock
    has caught up with the newest event time seen so far, so back-dated, late and
    duplicated records never hold the stream back. Waits shorter than ``min_sleep``
    seconds are not slept (a record may go out that much early): at thousands of
    records per second a sleep per record would cost more than it paces.
    """

    def __init__(
        self,
        days_per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        min_sleep: float = 0.002,
    ) -> None:
        if days_per_minute <= 0:
            raise ValueError(f"days_per_minute must be > 0, got {days_per_minute}")
        #: simulated milliseconds per wall-clock second
        self.ms_per_s = days_per_minute * 86_400_000 / 60
        self._clock = clock
        self._sleep = sleep
        self._min_sleep = min_sleep
        self._origin: tuple[int, float] | None = None
        self._high = 0

    def wait_for(self, ts_ms: int) -> None:
        if self._origin is None:
            self._origin = (ts_ms, self._clock())
            self._high = ts_ms
            return
        if ts_ms <= self._high:
            return
        self._high = ts_ms
        sim0, wall0 = self._origin
        wait = wall0 + (ts_ms - sim0) / self.ms_per_s - self._clock()
        if wait >= self._min_sleep:
            self._sleep(wait)


# --- producing ------------------------------------------------------------------------


def producer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings for the input producer (see the module docstring for why)."""
    return settings.confluent_config(
        **{
            "linger.ms": 5,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "allow.auto.create.topics": False,
            "compression.type": "lz4",
        }
    )


def check_input_topics(producer: Producer, settings: Settings, timeout: float = 10.0) -> None:
    """Raise ``ProduceError`` unless every (prefixed) input topic exists on the cluster.

    Topics missing from the metadata are asked for again until ``timeout``: a broker
    learns of topics just created (``tierstream topics create`` a moment ago) from the
    controller a little later, seconds later on a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            md = producer.list_topics(timeout=max(0.1, deadline - time.monotonic()))
        except KafkaException as exc:
            raise ProduceError(
                f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc.args[0]}"
            ) from exc
        missing = [t for t in settings.input_topics if t not in md.topics]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if missing:
        raise ProduceError(
            f"input topics missing on {settings.kafka_bootstrap}: {', '.join(missing)}; "
            "create them first with `tierstream topics create`"
        )


def topic_partitions(settings: Settings, name: str, timeout: float = 10.0) -> int:
    """Partitions of the (prefixed) topic ``name``; ``ProduceError`` if it is missing."""
    prod = Producer(producer_config(settings))
    full = settings.topic(name)
    try:
        md = prod.list_topics(full, timeout=timeout)
    except KafkaException as exc:
        raise ProduceError(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc.args[0]}"
        ) from exc
    meta = md.topics.get(full)
    if meta is None or meta.error is not None or not meta.partitions:
        raise ProduceError(
            f"topic {full} missing on {settings.kafka_bootstrap}; "
            "create it first with `tierstream topics create`"
        )
    return len(meta.partitions)


def produce_records(
    settings: Settings,
    records: Iterable[SimRecord],
    rate: float | None = None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    duration: float | None = None,
    pace: SimPace | None = None,
    producer: Producer | None = None,
    check_topics: bool = True,
) -> int:
    """Produce ``records`` to the prefixed input topics; return how many were produced.

    ``rate`` caps records per second (token bucket), ``pace`` holds them to a pace of
    simulated time, ``limit`` caps the count and ``duration`` the wall-clock seconds.
    ``progress(n)`` is called a few times per second and once at the end. Records with a
    ``partition`` (ticks) go to that partition, the rest by key. Everything produced is
    flushed before returning; any delivery error raises ``ProduceError`` naming the
    topic, key and broker error.
    """
    prod = producer if producer is not None else Producer(producer_config(settings))
    if check_topics:
        check_input_topics(prod, settings)
    errors: list[str] = []
    failed = 0

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        nonlocal failed
        if err is not None:
            failed += 1
            if len(errors) < 5:
                errors.append(f"{msg.topic()} key={msg.key()!r}: {err.str()}")

    bucket = TokenBucket(rate) if rate else None
    deadline = time.monotonic() + duration if duration is not None else None
    topic_names: dict[str, str] = {}
    sent = 0
    next_progress = time.monotonic() + _PROGRESS_EVERY_S
    try:
        for rec in records if limit is None else islice(records, limit):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if pace is not None and rec.ts_ms:
                pace.wait_for(rec.ts_ms)
            if bucket is not None:
                bucket.take()
            topic = topic_names.get(rec.topic)
            if topic is None:
                topic = topic_names[rec.topic] = settings.topic(rec.topic)
            while True:
                try:
                    if rec.partition is None:
                        prod.produce(topic, value=rec.value, key=rec.key, on_delivery=on_delivery)
                    else:
                        prod.produce(
                            topic,
                            value=rec.value,
                            key=rec.key,
                            partition=rec.partition,
                            on_delivery=on_delivery,
                        )
                    break
                except BufferError:  # local queue full: let deliveries drain
                    prod.poll(0.05)
            sent += 1
            if sent % _POLL_EVERY == 0:
                prod.poll(0)  # serve delivery callbacks
                if failed:
                    break
            if progress is not None and (bucket is not None or sent % _POLL_EVERY == 0):
                now = time.monotonic()
                if now >= next_progress:
                    progress(sent)
                    next_progress = now + _PROGRESS_EVERY_S
    finally:
        remaining = prod.flush(FLUSH_TIMEOUT_S)
    if failed:
        raise ProduceError(
            f"{failed} record(s) failed delivery to {settings.kafka_bootstrap}; first: "
            + "; ".join(errors)
        )
    if remaining:
        raise ProduceError(
            f"{remaining} record(s) still undelivered after {FLUSH_TIMEOUT_S:.0f}s "
            f"(is Kafka at {settings.kafka_bootstrap} reachable?)"
        )
    if progress is not None:
        progress(sent)
    return sent


# --- replay files ---------------------------------------------------------------------


@dataclass
class ReplayStats:
    """What reading a replay file found; reported by ``tierstream replay`` at the end."""

    lines: int = 0
    records: int = 0  # records yielded (to be produced)
    raw: int = 0  # exact-bytes records (the simulator's deliberate malformed ones)
    skipped: int = 0  # lines not produced: their topic cannot be known
    malformed: int = 0  # lines that are not a well-formed event (produced if routable)
    rejected: int = 0  # well-formed lines the service's decoder will dead-letter
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # first few "line N: reason"

    def note(self, line_no: int, reason: str, *, kind: str = "malformed") -> None:
        if kind == "malformed":
            self.malformed += 1
        elif kind == "rejected":
            self.rejected += 1
        self.reasons[reason.split(":", 1)[0]] += 1
        if len(self.examples) < 10:
            self.examples.append(f"line {line_no}: {reason}")


def detect_format(path: str) -> str:
    """``csv`` for *.csv, else ``jsonl``."""
    return "csv" if path.lower().endswith(".csv") else "jsonl"


def read_replay_file(
    path: str,
    topic: str | None = None,
    fmt: str | None = None,
    stats: ReplayStats | None = None,
    *,
    validate: bool = True,
) -> Iterator[SimRecord]:
    """Records from a JSONL or CSV file (``-`` reads standard input).

    JSONL: one JSON object per line; its ``topic`` field names the (unprefixed) input
    topic unless ``topic`` is given, and the rest is the event. ``--dry-run`` output of
    ``tierstream simulate`` replays byte for byte (including its malformed records,
    carried as ``_raw_b64``). CSV: a header row naming event fields; ``topic`` is
    required unless there is a ``topic`` column; empty cells are omitted.

    With ``validate`` the project decoder checks each record and counts those the
    service will dead-letter (they are still produced: that is what replay is for).
    """
    if topic is not None and topic not in INPUT_TOPICS:
        raise ReplayFileError(f"--topic must be one of {', '.join(INPUT_TOPICS)}, got {topic!r}")
    fmt = fmt or detect_format(path)
    if fmt not in ("jsonl", "csv"):
        raise ReplayFileError(f"unknown format {fmt!r} (expected jsonl or csv)")
    st = stats if stats is not None else ReplayStats()
    check = _decoder_check() if validate else None
    with _open(path) as fh:
        reader = _read_jsonl(fh, topic, st) if fmt == "jsonl" else _read_csv(fh, topic, st)
        for line_no, rec, wellformed in reader:
            if check is not None and wellformed:
                problem = check(rec.topic, rec.value)
                if problem is not None:
                    st.note(line_no, problem, kind="rejected")
            st.records += 1
            yield rec


def count_lines(path: str) -> int | None:
    """Data lines in a file (for a progress bar's total); None for standard input."""
    if path == "-":
        return None
    with open(path, "rb") as fh:
        n = sum(1 for line in fh if line.strip())
    return n - 1 if detect_format(path) == "csv" and n else n


def _open(path: str) -> BinaryIO:
    if path == "-":
        return io.BufferedReader(io.FileIO(sys.stdin.fileno(), closefd=False))
    if not Path(path).is_file():
        raise ReplayFileError(f"no such file: {path}")
    return open(path, "rb")


def _decoder_check() -> Callable[[str, bytes], str | None] | None:
    """``check(topic, value)`` -> the decoder's complaint or None; None without a decoder."""
    try:
        from schemas.decoder import DecodeError, Decoder
    except ImportError:  # pragma: no cover - partial checkouts only
        return None
    decoder = Decoder()

    def check(topic: str, value: bytes) -> str | None:
        if topic == TOPIC_TICKS:
            tick = decoder.decode_tick(value)
            return tick.describe() if isinstance(tick, DecodeError) else None
        result = decoder.decode(topic, value)
        return result.describe() if isinstance(result, DecodeError) else None

    return check


def _read_jsonl(
    fh: BinaryIO, topic: str | None, st: ReplayStats
) -> Iterator[tuple[int, SimRecord, bool]]:
    for line_no, raw_line in enumerate(fh, start=1):
        line = raw_line.rstrip(b"\r\n")
        if not line.strip():
            continue
        st.lines += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            reason = f"not JSON: {exc}"
            if topic is None:
                st.note(line_no, reason + " (no --topic: skipped)")
                st.skipped += 1
                continue
            st.note(line_no, reason)
            yield line_no, SimRecord(topic, b"", line, 0), False
            continue
        if not isinstance(obj, dict):
            reason = "not a JSON object"
            if topic is None:
                st.note(line_no, reason + " (no --topic: skipped)")
                st.skipped += 1
                continue
            st.note(line_no, reason)
            yield line_no, SimRecord(topic, b"", line, 0), False
            continue
        line_topic = obj.pop(TOPIC_FIELD, None)
        target = topic or line_topic
        if target == TOPIC_TICKS:  # the clock (simulate --tick-minutes): to its partition
            part = obj.get("partition")
            if type(part) is not int or part < 0:
                st.note(line_no, f"tick without a valid partition: {part!r} (skipped)")
                st.skipped += 1
                continue
            value = _reserialize(obj, line)
            yield line_no, SimRecord(TOPIC_TICKS, None, value, _event_ms(obj), part), True
            continue
        if not isinstance(target, str) or target not in INPUT_TOPICS:
            st.note(line_no, f"unknown topic: {target!r} (skipped)")
            st.skipped += 1
            continue
        raw_b64 = obj.pop(RAW_FIELD, None)
        raw_key = obj.pop(KEY_FIELD, None)
        obj.pop(LABEL_FIELD, None)
        if raw_b64 is not None:
            try:
                value = base64.b64decode(raw_b64, validate=True)
            except (ValueError, TypeError):
                st.note(line_no, f"bad {RAW_FIELD}: not base64 (skipped)")
                st.skipped += 1
                continue
            st.raw += 1
            key = raw_key.encode() if isinstance(raw_key, str) else b""
            yield line_no, SimRecord(target, key, value, 0), False
            continue
        cid = obj.get("customer_id")
        if not isinstance(cid, str):
            st.note(line_no, "missing field: customer_id (the key); produced with an empty key")
        key = cid.encode() if isinstance(cid, str) else b""
        yield line_no, SimRecord(target, key, _reserialize(obj, line), _event_ms(obj)), True


def _read_csv(
    fh: BinaryIO, topic: str | None, st: ReplayStats
) -> Iterator[tuple[int, SimRecord, bool]]:
    # surrogateescape: a row with bytes that are not UTF-8 is reported, not fatal.
    text = io.TextIOWrapper(fh, encoding="utf-8", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    if topic is None and TOPIC_FIELD not in header:
        raise ReplayFileError("CSV needs --topic (or a 'topic' column)")
    for row in reader:
        line_no = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        st.lines += 1
        if any(_NOT_UTF8.search(cell) for cell in row):
            st.note(line_no, "not UTF-8: a CSV row cannot carry raw bytes into JSON (skipped)")
            st.skipped += 1
            continue
        wellformed = True
        if len(row) != len(header):
            st.note(line_no, f"column count: {len(row)} cells for {len(header)} columns")
            wellformed = False
        obj: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=False):
            if cell != "":
                obj[name] = cell
        line_topic = obj.pop(TOPIC_FIELD, None)
        target = topic or line_topic
        if target not in INPUT_TOPICS:
            st.note(line_no, f"unknown topic: {target!r} (skipped)")
            st.skipped += 1
            continue
        assert target is not None
        for name in _CSV_NULL_FIELDS.get(target, ()):
            if name in header and name not in obj:
                obj[name] = None
        for name in list(obj):
            if obj[name] is None:
                continue
            converted = _csv_value(target, name, obj[name])
            if converted is None:
                st.note(line_no, f"bad value: {name}={obj[name]!r}")
                wellformed = False
            else:
                obj[name] = converted
        cid = obj.get("customer_id")
        key = cid.encode() if isinstance(cid, str) else b""
        yield line_no, SimRecord(target, key, _dumps_exact(obj), _event_ms(obj)), wellformed


def _csv_value(topic: str, name: str, cell: str) -> Any:
    """A CSV cell as its wire type; None when it cannot be (the cell is kept as text)."""
    cell = cell.strip()
    if name in _CSV_INT_FIELDS.get(topic, ()):
        try:
            return int(cell)
        except ValueError:
            return None
    if name in _CSV_NUMBER_FIELDS.get(topic, ()):
        try:
            num = Decimal(cell)
        except ArithmeticError:
            return None
        return num if num.is_finite() else None
    if name in _CSV_BOOL_FIELDS.get(topic, ()):
        low = cell.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        return None
    return cell


def _reserialize(obj: dict[str, Any], line: bytes) -> bytes:
    """The event as compact JSON, with every number's literal kept exactly.

    orjson parses non-integer numbers to binary floats; when there are any, the line
    is parsed again with ``parse_float=Decimal`` and the literals are written back as
    they were (``12.50`` stays ``12.50``), so replay never changes an amount.
    """
    if not _has_float(obj):
        return orjson.dumps(obj)
    exact = json.loads(line, parse_float=Decimal)
    for name in (TOPIC_FIELD, RAW_FIELD, KEY_FIELD, LABEL_FIELD):
        exact.pop(name, None)
    return _dumps_exact(exact)


def _dumps_exact(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, default=_decimal_fragment)


def _decimal_fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def _event_ms(obj: dict[str, Any]) -> int:
    """The event time in epoch ms, read as the worker's decoder reads it; 0 when ``ts``
    is not a valid time (the record is then dead-lettered; it sorts first)."""
    ms = timestamp(obj.get("ts"))
    return ms if isinstance(ms, int) else 0


def to_jsonl_line(label: str, rec: SimRecord) -> bytes:
    """One ``--dry-run`` line (without newline) that ``replay`` turns back into ``rec``.

    A good record is its JSON object with ``topic`` in front; a malformed one cannot be
    embedded as JSON, so it travels base64-encoded in ``_raw_b64`` with its key.
    """
    if not is_bad(label) and rec.value[:1] == b"{" and rec.value[1:2] != b"}":
        return b'{"' + TOPIC_FIELD.encode() + b'":' + orjson.dumps(rec.topic) + b"," + rec.value[1:]
    return orjson.dumps(
        {
            TOPIC_FIELD: rec.topic,
            KEY_FIELD: (rec.key or b"").decode("utf-8", "replace"),
            RAW_FIELD: base64.b64encode(rec.value).decode(),
            LABEL_FIELD: label,
        }
    )


def write_jsonl(
    labelled: Iterable[tuple[str, SimRecord]],
    out: IO[bytes],
    limit: int | None = None,
    rate: float | None = None,
    duration: float | None = None,
    pace: SimPace | None = None,
) -> int:
    """Write ``--dry-run`` lines; same limit/rate/duration/pace semantics as producing."""
    bucket = TokenBucket(rate) if rate else None
    deadline = time.monotonic() + duration if duration is not None else None
    n = 0
    source = labelled if limit is None else islice(labelled, limit)
    for label, rec in source:
        if deadline is not None and time.monotonic() >= deadline:
            break
        if pace is not None and rec.ts_ms:
            pace.wait_for(rec.ts_ms)
        if bucket is not None:
            bucket.take()
        out.write(to_jsonl_line(label, rec) + b"\n")
        n += 1
    out.flush()
    return n
