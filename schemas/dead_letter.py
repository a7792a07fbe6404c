"""Dead-letter records: what the service writes for an input it could not decode.

The raw value is kept byte-exact (base64) so an operator can see precisely what the
producer sent and replay it after a fix; base64 because the value may not even be
valid UTF-8 (and then could not sit in a JSON string). The key is written as text when
it is valid UTF-8 — keys are customer ids, so this keeps the common case readable and
greppable — and as base64 otherwise; ``key_encoding`` says which, so the original
bytes are always recoverable. The record matches schemas/json/dead-letters.schema.json.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from schemas.timefmt import format_ts_utc

KEY_UTF8 = "utf-8"
KEY_BASE64 = "base64"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


#: Largest raw value kept whole in a dead letter. A rejected payload can be as large as
#: the broker allows (1 MB by default), and base64 adds a third: kept whole it would not
#: fit in a dead-letter record, and the dead letter would itself fail. Larger values keep
#: their first bytes, their size and a SHA-256 of the whole, which is enough to find the
#: producer and to prove which message it was.
MAX_VALUE_BYTES = 65536


def dead_letter_record(
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    error: str,
    ts_ms: int,
    max_value_bytes: int = MAX_VALUE_BYTES,
) -> dict[str, Any]:
    """The JSON-ready dead-letter record for one rejected message.

    ``error`` is the decoder's ``DecodeError.describe()`` ("$.amount: must be > 0").
    ``ts_ms`` is supplied by the caller — pass the source message's timestamp so a
    replay of the same input writes the same record (the core never reads a clock).
    ``raw``/``key`` of ``None`` (no value / no key) become JSON null, distinct from an
    empty value, which is ``""``.
    """
    key_text: str | None
    key_encoding: str | None
    if key is None:
        key_text, key_encoding = None, None
    else:
        try:
            key_text, key_encoding = bytes(key).decode("utf-8"), KEY_UTF8
        except UnicodeDecodeError:
            key_text, key_encoding = _b64(bytes(key)), KEY_BASE64
    record: dict[str, Any] = {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "key": key_text,
        "key_encoding": key_encoding,
        "value": None if raw is None else _b64(bytes(raw[:max_value_bytes])),
        "error": error,
        "ts": format_ts_utc(ts_ms),
    }
    if raw is not None and len(raw) > max_value_bytes:
        record["value_truncated"] = True
        record["value_size"] = len(raw)
        record["value_sha256"] = hashlib.sha256(raw).hexdigest()
    return record


def original_key(record: dict[str, Any]) -> bytes | None:
    """The source key bytes back from a dead-letter record (for replay tools)."""
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
