"""What the pipeline sends to ``dead-letters`` for a record it could not accept.

Each dead letter carries its *reason class*: a low-cardinality label of its cause,
written in the record (``reason_class``) and used as the ``reason`` label of
``tierstream_dead_letters_total`` -- the configured limit a record broke
(``limits.max_key_bytes``...), a class of the field and reason (``invalid_json``,
``missing:$.ts``, ``invalid:currency``...), or ``internal``: processing the record
raised an unexpected exception (a bug; the record is kept for a replay after the
fix). The record itself is schemas/dead_letter.py's, always sendable; its Kafka key is
the source key, cut to a bounded prefix when longer (``dead_letter_message_key``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from schemas.dead_letter import (
    REASON_INTERNAL,
    dead_letter_message_key,
    dead_letter_record,
    internal_dead_letter_record,
)
from schemas.decoder import DecodeError
from schemas.redaction import Redactor
from state.core import CoreError


def reason_class(error: DecodeError | CoreError) -> str:
    """A low-cardinality label for a dead letter's cause (metrics must stay bounded):
    the name of the configured limit it comes from (``limits.max_key_bytes``, ...),
    else a class of its field and reason. ``internal`` (REASON_INTERNAL) is the class
    of a record whose processing raised anything else."""
    if error.limit is not None:
        return error.limit
    if isinstance(error, CoreError):
        return f"invalid:{error.field}"
    r = error.reason
    if error.field == "$":
        for marker, name in (
            ("exceeds", "too_large"),
            ("UTF-8", "invalid_utf8"),
            ("JSON", "invalid_json"),
            ("empty", "empty"),
            ("key", "key_mismatch"),
        ):
            if marker in r:
                return name
        return "invalid_payload"
    if "missing" in r:
        return f"missing:{error.field}"
    return f"invalid:{error.field}"


def dead_letter(
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    ts_ms: int,
    error: DecodeError | Exception,
    redactor: Redactor | None = None,
) -> tuple[str, bytes | None, bytes]:
    """(reason class, Kafka message key, serialized record) of the dead letter of a
    record that the decoder or the core rejected (``DecodeError``, ``CoreError``) or
    whose processing raised ``error`` (class ``internal``); its value's personal fields
    redacted by ``redactor`` (schemas/redaction.py) when given."""
    if isinstance(error, DecodeError | CoreError):
        rc = reason_class(error)
        text = (
            error.describe()
            if isinstance(error, DecodeError)
            else f"$.{error.field}: {error.reason}"
        )
        record = dead_letter_record(
            source_topic, partition, offset, key, value, text, ts_ms, reason_class=rc
        )
    else:
        rc = REASON_INTERNAL
        record = internal_dead_letter_record(
            source_topic, partition, offset, key, value, error, ts_ms
        )
    if redactor is not None:
        try:
            record = redactor.apply(record, value)
        except Exception:  # a dead letter is always built: withhold what cannot be searched
            record = _withheld(record, value)
    return rc, dead_letter_message_key(key), orjson.dumps(record)


def _withheld(record: dict[str, Any], value: bytes | None) -> dict[str, Any]:
    """``record`` without its value (size and digest kept), for a value the redactor
    failed on: personal data must not leak because redaction broke."""
    out = dict(record)
    out.pop("value_truncated", None)
    raw = bytes(value or b"")
    out["value"] = None
    out["value_withheld"] = True
    out["value_size"] = len(raw)
    out["value_sha256"] = hashlib.sha256(raw).hexdigest()
    return out
