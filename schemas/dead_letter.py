"""Dead-letter records: what the service writes for an input it could not accept.

The raw value is kept byte-exact (base64) so an operator can see precisely what the
producer sent and replay it after a fix; base64 because the value may not even be
valid UTF-8 (and then could not sit in a JSON string). The key is written as text when
it is valid UTF-8 — keys are customer ids, so this keeps the common case readable and
greppable — and as base64 otherwise; ``key_encoding`` says which, so the original
bytes are always recoverable. The record matches schemas/json/dead-letters.schema.json.

**A dead letter must always be sendable** (issue 18: a 170 KB key copied whole made the
dead letter itself too large, and the worker stopped). So every part of the record is
bounded whatever the input: a key longer than ``MAX_KEY_BYTES`` and a value longer
than ``MAX_VALUE_BYTES`` keep their first bytes with the SHA-256 and the length of the
original (enough to find the producer and prove which message it was), the error text
is cut at ``MAX_ERROR_CHARS``, and ``dead_letter_message_key`` bounds the Kafka message
key the same way. ``MAX_RECORD_BYTES`` is the resulting bound on the serialized record
(tests/schemas/test_dead_letter.py checks it with hypothesis at the extremes), far
below the broker's 1 MiB message limit.

A record that made the worker raise an unexpected exception (a bug, not bad input) is
dead-lettered with ``internal_dead_letter_record``: reason class ``internal`` and the
exception's type in the error text, so it can be replayed once the bug is fixed.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Final

from schemas.timefmt import format_ts_utc

__all__ = [
    "KEY_BASE64",
    "KEY_UTF8",
    "MAX_ERROR_CHARS",
    "MAX_KEY_BYTES",
    "MAX_RECORD_BYTES",
    "MAX_VALUE_BYTES",
    "REASON_INTERNAL",
    "dead_letter_message_key",
    "dead_letter_record",
    "internal_dead_letter_record",
    "internal_error_text",
    "original_key",
    "original_value",
]

KEY_UTF8: Final = "utf-8"
KEY_BASE64: Final = "base64"

#: Largest raw value kept whole in a dead letter. A rejected payload can be as large as
#: the broker allows (1 MB by default), and base64 adds a third: kept whole it would not
#: fit in a dead-letter record, and the dead letter would itself fail.
MAX_VALUE_BYTES: Final = 65536
#: Largest key kept whole (in the record and as the dead letter's own message key).
#: Valid keys are customer ids of at most 128 characters (512 bytes).
MAX_KEY_BYTES: Final = 1024
#: Longest error text kept: decoder reasons are far shorter; an internal error's
#: message is not.
MAX_ERROR_CHARS: Final = 1024
#: Longest source topic name: Kafka's own limit.
MAX_TOPIC_CHARS: Final = 249
#: Longest reason class kept (they are short labels such as ``internal``).
MAX_REASON_CLASS_CHARS: Final = 64
#: Dead-letter times are clamped into these (1000-01-01T00:00:00.000Z ..
#: 9999-12-31T23:59:59.999Z): a Kafka timestamp is any 64-bit number, and only these
#: have the four-digit year the schema's ``ts`` pattern requires.
_TS_MIN: Final = -30610224000000
_TS_MAX: Final = 253402300799999
#: The reason class of a record that made the worker raise unexpectedly.
REASON_INTERNAL: Final = "internal"
_CUT: Final = " ...[cut]"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)


#: A JSON string of n characters takes at most 6n + 2 bytes (a control character is
#: written as \\u00XX); an int at most 20 characters (Kafka's are 32 and 64 bits).
_JSON_CHAR: Final = 6
_INT: Final = 20
#: Upper bound of ``len(orjson.dumps(dead_letter_record(...)))`` for any arguments
#: (partition and offset being Kafka's int32 / int64): every field at its largest.
MAX_RECORD_BYTES: Final = (
    256  # braces, every field name with its quotes, colon and comma, true, nulls
    + MAX_TOPIC_CHARS * _JSON_CHAR
    + 2
    + 2 * _INT  # partition, offset
    + max(MAX_KEY_BYTES * _JSON_CHAR, _b64_len(MAX_KEY_BYTES)) + 2  # key (text or base64)
    + len(KEY_BASE64) + 2
    + _b64_len(MAX_VALUE_BYTES) + 2
    + (MAX_ERROR_CHARS + len(_CUT)) * _JSON_CHAR + 2
    + len("2024-05-01T09:15:02.120Z") + 2
    + 2 * _INT  # key_size, value_size
    + 2 * (64 + 2)  # the SHA-256s
    + MAX_REASON_CLASS_CHARS * _JSON_CHAR + 2
)  # fmt: skip


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + _CUT


def _key_prefix(key: bytes) -> bytes:
    """The first MAX_KEY_BYTES bytes of a key; for a UTF-8 key, cut at a character
    boundary so the prefix is still text."""
    head = key[:MAX_KEY_BYTES]
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return head
    return head.decode("utf-8", "ignore").encode("utf-8")  # drops a split last character


def dead_letter_message_key(key: bytes | None) -> bytes | None:
    """The Kafka message key to send a dead letter with: the source key, or its first
    MAX_KEY_BYTES bytes when longer (the record then says ``key_truncated``)."""
    if key is None or len(key) <= MAX_KEY_BYTES:
        return key
    return _key_prefix(bytes(key))


def dead_letter_record(
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    error: str,
    ts_ms: int,
    max_value_bytes: int = MAX_VALUE_BYTES,
    reason_class: str | None = None,
) -> dict[str, Any]:
    """The JSON-ready dead-letter record for one rejected message.

    ``error`` is the decoder's ``DecodeError.describe()`` ("$.amount: must be > 0").
    ``ts_ms`` is supplied by the caller — pass the source message's timestamp so a
    replay of the same input writes the same record (the core never reads a clock);
    a timestamp outside years 1000..9999 (a producer can set any 64-bit one) is
    clamped into them. ``raw``/``key`` of ``None`` (no value / no key) become JSON
    null, distinct from an empty value, which is ``""``. ``reason_class``, when given,
    is written as is (the worker's low-cardinality label, e.g. ``internal``).
    Never raises for any bytes, text or int: see the module docstring for the bounds.
    """
    max_value_bytes = max(0, min(max_value_bytes, MAX_VALUE_BYTES))
    key_text: str | None
    key_encoding: str | None
    kept_key = key if key is None or len(key) <= MAX_KEY_BYTES else _key_prefix(bytes(key))
    if kept_key is None:
        key_text, key_encoding = None, None
    else:
        try:
            key_text, key_encoding = bytes(kept_key).decode("utf-8"), KEY_UTF8
        except UnicodeDecodeError:
            key_text, key_encoding = _b64(bytes(kept_key)), KEY_BASE64
    record: dict[str, Any] = {
        "source_topic": source_topic[:MAX_TOPIC_CHARS],
        "partition": partition,
        "offset": offset,
        "key": key_text,
        "key_encoding": key_encoding,
        "value": None if raw is None else _b64(bytes(raw[:max_value_bytes])),
        "error": _clip(error, MAX_ERROR_CHARS) or "?",
        "ts": format_ts_utc(min(max(ts_ms, _TS_MIN), _TS_MAX)),
    }
    if raw is not None and len(raw) > max_value_bytes:
        record["value_truncated"] = True
        record["value_size"] = len(raw)
        record["value_sha256"] = hashlib.sha256(raw).hexdigest()
    if key is not None and len(key) > MAX_KEY_BYTES:
        record["key_truncated"] = True
        record["key_size"] = len(key)
        record["key_sha256"] = hashlib.sha256(key).hexdigest()
    if reason_class is not None:
        label = "".join(
            c if c.isprintable() else "?" for c in reason_class[:MAX_REASON_CLASS_CHARS]
        )
        record["reason_class"] = label or "?"
    return record


def internal_error_text(exc: BaseException) -> str:
    """``$: internal error <module.Type>: <message>``, bounded, and never raising
    (an exception whose ``str`` itself fails still gets its type named)."""
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not take the dead letter down with it
        message = "<message unavailable>"
    return _clip(f"$: internal error {name}: {message}", MAX_ERROR_CHARS)


def internal_dead_letter_record(
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    exc: BaseException,
    ts_ms: int,
) -> dict[str, Any]:
    """The dead letter of a record whose decoding or applying raised ``exc`` -- not a
    DecodeError or CoreError but a bug: reason class ``internal``, the exception's type
    and message in ``error``, the record byte-exact (within the bounds) for a replay
    once the bug is fixed."""
    return dead_letter_record(
        source_topic,
        partition,
        offset,
        key,
        raw,
        internal_error_text(exc),
        ts_ms,
        reason_class=REASON_INTERNAL,
    )


def original_key(record: dict[str, Any]) -> bytes | None:
    """The source key bytes back from a dead-letter record (for replay tools).

    For a truncated key (``key_truncated``) these are only its first bytes."""
    key = record["key"]
    if key is None:
        return None
    if record["key_encoding"] == KEY_BASE64:
        return base64.b64decode(key, validate=True)
    return str(key).encode("utf-8")


def original_value(record: dict[str, Any]) -> bytes | None:
    """The source value bytes back from a dead-letter record (for replay tools).

    For a truncated record (``value_truncated``) these are only the first bytes."""
    value = record["value"]
    return None if value is None else base64.b64decode(value, validate=True)
