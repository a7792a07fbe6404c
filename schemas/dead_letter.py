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
from typing import Any

from state.decisions import format_ts

KEY_UTF8 = "utf-8"
KEY_BASE64 = "base64"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def dead_letter_record(
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    error: str,
    ts_ms: int,
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
    return {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "key": key_text,
        "key_encoding": key_encoding,
        "value": None if raw is None else _b64(bytes(raw)),
        "error": error,
        "ts": format_ts(ts_ms),
    }


def original_key(record: dict[str, Any]) -> bytes | None:
    """The source key bytes back from a dead-letter record (for replay tools)."""
    key = record["key"]
    if key is None:
        return None
    if record["key_encoding"] == KEY_BASE64:
        return base64.b64decode(key, validate=True)
    return str(key).encode("utf-8")


def original_value(record: dict[str, Any]) -> bytes | None:
    """The source value bytes back from a dead-letter record (for replay tools)."""
    value = record["value"]
    return None if value is None else base64.b64decode(value, validate=True)
