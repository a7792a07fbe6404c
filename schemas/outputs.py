"""Reading tierstream's own outputs back: raw bytes of an output topic -> the checked
record, or a precise error.

Why readers need this: whatever reads the decisions back (the KPI job,
streams/tools/kpi_read.py) must judge each record by the same contract the worker
writes to -- the output JSON Schemas in ``schemas/json/`` (``additionalProperties:
false``), the key that equals ``customer_id`` -- and must count what breaks it rather
than guess at it. So the checks are the output validators of ``validate_output``
(compiled from the same files), with the reasons of schemas/explain.py, and the event
time comes back as epoch milliseconds by the decoder's own RFC 3339 parser.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Final

import fastjsonschema
import orjson

from schemas.decoder import compile_schema, load_schema
from schemas.events import OUTPUT_TOPICS, TOPIC_DEAD_LETTERS
from schemas.explain import explain, not_json
from schemas.values import DecodeError, json_type, timestamp

__all__ = ["read_output"]

#: Outputs keyed by customer_id (a dead letter keeps the source message's key).
_KEYED: Final = frozenset(OUTPUT_TOPICS) - {TOPIC_DEAD_LETTERS}


@cache
def _validator(topic: str) -> Callable[[Any], Any]:
    return compile_schema(load_schema(topic))


def read_output(topic: str, key: bytes | None, raw: bytes | None) -> dict[str, Any] | DecodeError:
    """The record of output ``topic`` (unprefixed) with its event time added as
    ``ts_ms`` (epoch ms), or why it is not a valid record of that topic. Raises
    ``ValueError`` for a topic that is not an output topic."""
    if topic not in OUTPUT_TOPICS:
        raise ValueError(f"not an output topic: {topic!r} (expected one of {OUTPUT_TOPICS})")
    if not raw:
        return DecodeError("$", "empty payload")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return not_json(bytes(raw), exc)
    if type(doc) is not dict:
        return DecodeError("$", f"must be a JSON object, got {json_type(doc)}")
    try:
        _validator(topic)(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        return explain(exc, raw, output=True)
    if topic in _KEYED and (key is None or key != doc["customer_id"].encode()):
        return DecodeError("key", "does not equal the record's customer_id")
    ts = timestamp(doc["ts"])
    if isinstance(ts, DecodeError):
        return ts
    doc["ts_ms"] = ts
    return doc
