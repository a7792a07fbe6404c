"""The rules history: records of the ``rules`` topic, which of them count, the timeline.

Why it is one pure function of the records: every worker, every restart and every
``tierstream rules history`` must agree on which versions are in force when, or the
same events would be decided by different rules in different places. So a record is
accepted or refused from what it carries and where it sits -- its fields, its offset
and the broker's append time -- never from the reader's clock or state, and the
timeline follows from the accepted records alone (docs/operations.md, "Changing the
rules", explains the whole flow and why it is deterministic).

A record is **refused** (logged, counted, and ignored by every reader alike) when:

* it is not a valid rules record (schemas/json/rules.schema.json);
* it is **backdated**: its ``effective_from`` lies less than ``CLOCK_MARGIN_MS`` after
  the broker's append time. This is what lets a worker decide an event before a
  publication reaches it: once it has read the topic up to the end offsets it asked
  for at wall time W, any record still to come was appended after that request and so
  takes effect at or after W (clocks within the margin of the broker's);
* its TOML does not load (the start-up loader, the same errors: state/rules.py) --
  a worker then keeps the version before it, with an error metric and a log line;
* its version was published before (an earlier accepted record has it): a version
  takes effect once, as its switch's decisions derive their ids from it.

Of accepted records that take effect at the same instant, the later one (by offset)
wins and the earlier is **superseded**. No Kafka here: streams/rules_topic.py reads and
writes the topic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import fastjsonschema
import orjson

from schemas.decoder import compile_schema, load_schema
from schemas.events import TOPIC_RULES
from schemas.timefmt import format_ts_utc
from state.rules import Rules, load_rules_text
from state.timeline import RulesTimeline

__all__ = [
    "CLOCK_MARGIN_MS",
    "Entry",
    "RulesHistory",
    "RulesRecord",
    "accept",
    "encode_record",
    "parse_ts",
    "record_key",
]

#: The largest difference tolerated between the clock of any worker or publisher and
#: the broker's. A published version takes effect at least this long after the broker
#: appended it, so a worker's own clock, read when it asked for the end offsets, is a
#: safe bound for the versions it has not read yet (docs/operations.md).
CLOCK_MARGIN_MS = 1000
#: The longest version (the tier-changes schema's ``rules_version``).
MAX_VERSION_CHARS = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _validator() -> Callable[[Any], Any]:
    return compile_schema(load_schema(TOPIC_RULES))


_validate = _validator()


def parse_ts(text: str) -> int:
    """RFC 3339 with an offset (``Z`` or ``+08:00``) -> epoch ms, floored; ValueError
    otherwise (a time without an offset is ambiguous: refused)."""
    moment = datetime.fromisoformat(text.strip().upper().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time without an offset (Z or +hh:mm): {text!r}")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class RulesRecord:
    """One record as published (the fields of schemas/json/rules.schema.json)."""

    version: str
    label: str
    effective_from: int  # epoch ms
    published_by: str
    published_at: int  # epoch ms
    toml: str

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "label": self.label,
            "effective_from": format_ts_utc(self.effective_from),
            "published_by": self.published_by,
            "published_at": format_ts_utc(self.published_at),
            "toml": self.toml,
        }


def record_key(version: str, effective_from: int) -> bytes:
    """The record's key: one per publication, so compaction keeps them all (a retried
    publish of the same version at the same time replaces itself)."""
    return f"{version}@{format_ts_utc(effective_from)}".encode()


def encode_record(rec: RulesRecord) -> tuple[bytes, bytes]:
    """(key, value) of a record, checked against its schema first."""
    doc = rec.to_json()
    _validate(doc)
    return record_key(rec.version, rec.effective_from), orjson.dumps(doc)


def decode_record(value: bytes | None) -> RulesRecord:
    """The record of a message value; ValueError naming what is wrong."""
    if value is None:
        raise ValueError("empty record (a tombstone)")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    try:
        _validate(doc)
    except fastjsonschema.JsonSchemaValueException as e:
        raise ValueError(f"not a rules record: {e.message}") from None
    return RulesRecord(
        version=doc["version"],
        label=doc["label"],
        effective_from=parse_ts(doc["effective_from"]),
        published_by=doc["published_by"],
        published_at=parse_ts(doc["published_at"]),
        toml=doc["toml"],
    )


@dataclass
class Entry:
    """One message of the topic and what became of it."""

    partition: int
    offset: int
    append_ms: int  # the broker's timestamp of the record (LogAppendTime)
    record: RulesRecord | None  # None: not a rules record at all
    status: str = "accepted"  # accepted | superseded | refused
    reason: str = ""
    rules: Rules | None = field(default=None, repr=False)

    @property
    def version(self) -> str:
        return self.record.version if self.record is not None else ""


@dataclass
class RulesHistory:
    """Every message read, with its status, and the timeline of the accepted ones."""

    base: Rules
    entries: list[Entry]
    timeline: RulesTimeline

    @property
    def accepted(self) -> list[Entry]:
        return [e for e in self.entries if e.status == "accepted"]

    @property
    def refused(self) -> list[Entry]:
        return [e for e in self.entries if e.status == "refused"]

    def in_force(self, ts: int) -> Entry | None:
        """The accepted entry in force at event time ``ts`` (None: the base rules)."""
        best: Entry | None = None
        best_from = 0
        for e in self.accepted:
            assert e.record is not None
            start = e.record.effective_from
            if start <= ts and (best is None or start > best_from):
                best, best_from = e, start
        return best

    def find(self, version: str) -> Entry | None:
        """The accepted entry of ``version`` (else the last entry that names it)."""
        named = [e for e in self.entries if e.version == version]
        for e in named:
            if e.status == "accepted":
                return e
        return named[-1] if named else None


#: Message as read: (partition, offset, broker timestamp ms, value).
Message = tuple[int, int, int, bytes | None]


def accept(
    messages: Iterable[Message],
    base: Rules,
    loaded: dict[tuple[int, int], Rules | str] | None = None,
) -> RulesHistory:
    """The history of the given messages (any order: they are taken in (partition,
    offset) order). ``loaded``: a memo of (partition, offset) -> the loaded rules or
    the load error, so a follower loads each record's TOML once."""
    memo = {} if loaded is None else loaded
    entries: list[Entry] = []
    seen_versions: set[str] = set()
    for partition, offset, append_ms, value in sorted(messages, key=lambda m: (m[0], m[1])):
        try:
            rec = decode_record(value)
        except ValueError as exc:
            entries.append(Entry(partition, offset, append_ms, None, "refused", str(exc)))
            continue
        entry = Entry(partition, offset, append_ms, rec)
        entries.append(entry)
        if rec.effective_from < append_ms + CLOCK_MARGIN_MS:
            entry.status = "refused"
            entry.reason = (
                f"backdated: takes effect at {format_ts_utc(rec.effective_from)}, less than "
                f"{CLOCK_MARGIN_MS} ms after the broker appended it "
                f"({format_ts_utc(append_ms)}); a version may not decide events that "
                "workers may have decided already"
            )
            continue
        if rec.version in seen_versions:
            entry.status = "refused"
            entry.reason = (
                f"version {rec.version!r} was published before; a version takes effect once"
            )
            continue
        got = memo.get((partition, offset))
        if got is None:
            try:
                got = load_rules_text(rec.toml, f"rules version {rec.version}", rec.version)
            except ValueError as exc:
                got = str(exc)
            memo[(partition, offset)] = got
        if isinstance(got, str):
            entry.status = "refused"
            entry.reason = f"does not load: {got}"
            continue
        entry.rules = got
        seen_versions.add(rec.version)
    # equal effective_from: the later publication wins
    by_time: dict[int, Entry] = {}
    for entry in entries:
        if entry.status == "accepted":
            assert entry.record is not None
            earlier = by_time.get(entry.record.effective_from)
            if earlier is not None:
                earlier.status = "superseded"
                earlier.reason = (
                    f"offset {entry.offset} ({entry.version}) takes effect at the same instant"
                )
            by_time[entry.record.effective_from] = entry
    timeline = RulesTimeline(
        base, [(t, x.rules) for t, x in sorted(by_time.items()) if x.rules is not None]
    )
    return RulesHistory(base, entries, timeline)
