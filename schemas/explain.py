"""Schema failures in words: a fastjsonschema exception -> the field path and a reason.

Why its own module: the validator's message names its internal variable ("data.amount
must be bigger than 0") and the keyword, which a producer team cannot act on. The
reasons here use the words the happy path uses (a money field that fails the schema is
re-checked by schemas/values.py so the reason says *why*: "more than 8 decimal places"),
and name the configured limit when one is the bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import fastjsonschema

from schemas.values import (
    NON_NEGATIVE,
    POSITIVE,
    SIGNED,
    DecodeError,
    birth_date,
    json_type,
    money,
    short,
    timestamp,
)

__all__ = ["explain", "not_json"]

# Field-specific explanations for schema failures: the schema says "no", these say why
# in the same words the happy path would use.
_MONEY_SIGNS: Final[Mapping[str, str]] = {
    "amount": POSITIVE,
    "balance": NON_NEGATIVE,
    "balance_after": SIGNED,
}
_PATTERN_REASONS: Final[Mapping[str, str]] = {
    "currency": "must be an ISO 4217 code of 3 upper-case letters",
    "event_id": "must not contain control characters",
    "customer_id": "must not contain control characters",
    "account_id": "must not contain control characters",
    "cause_event_id": "must not contain control characters",
    "event_id@out": "must be 32 lower-case hex characters (derive_event_id)",
    "ts@out": "must be RFC 3339 UTC with milliseconds (format_ts)",
    "kind": "must be snake_case",
    "value": "must be standard base64",
}
_TYPE_WORDS: Final[Mapping[str, str]] = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def explain(
    exc: fastjsonschema.JsonSchemaValueException,
    raw: bytes | None,
    output: bool = False,
    limits: Mapping[str, str] | None = None,
) -> DecodeError:
    """Turn a fastjsonschema failure into a field path and a reason. ``limits``: the
    top-level fields whose maxLength is a configured limit, and that limit's name."""
    name = str(exc.name)
    path = "$" + name[len("data") :] if name.startswith("data") else "$." + name
    rule = exc.rule
    value = exc.value
    definition: dict[str, Any] = exc.definition if isinstance(exc.definition, dict) else {}
    if rule == "required" and isinstance(value, dict):
        missing = next((k for k in definition.get("required", ()) if k not in value), "?")
        return DecodeError(f"{path}.{missing}", "required field missing")
    if rule == "additionalProperties" and isinstance(value, dict):
        known = definition.get("properties", {})
        extra = sorted(k for k in value if k not in known)
        return DecodeError(f"{path}.{extra[0]}" if extra else path, "unexpected field")
    key = path[2:] if path.startswith("$.") and "." not in path[2:] else ""
    if not output and raw is not None:
        if key in _MONEY_SIGNS:
            amount = money(value, key, raw, _MONEY_SIGNS[key])
            if isinstance(amount, DecodeError):
                return amount
        elif key == "ts":
            ts = timestamp(value)
            if isinstance(ts, DecodeError):
                return ts
        elif key == "birth_date":
            birth = birth_date(value)
            if isinstance(birth, DecodeError):
                return birth
    if rule == "type":
        wanted = definition.get("type")
        names = wanted if isinstance(wanted, list) else [wanted]
        words = " or ".join(_TYPE_WORDS.get(str(n), str(n)) for n in names)
        return DecodeError(path, f"must be {words}, got {json_type(value)}")
    if rule == "enum":
        allowed = ", ".join(str(v) for v in definition.get("enum", ()) if v is not None)
        return DecodeError(path, f"unknown value {short(value)} (allowed: {allowed})")
    if rule == "const":
        return DecodeError(path, f"must be {definition.get('const')!r}, got {short(value)}")
    if rule == "pattern":
        reason = _PATTERN_REASONS.get(f"{key}@out" if output else key) or _PATTERN_REASONS.get(key)
        if reason is None:
            reason = f"must match {definition.get('pattern')}"
        return DecodeError(path, f"{reason}, got {short(value)}")
    bounds = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
    }
    if rule in bounds:
        bound = definition.get(rule)
        return DecodeError(path, f"must be {bounds[rule]} {bound}, got {short(value)}")
    if rule == "minLength":
        limit = definition.get("minLength")
        too_short = "must not be empty" if limit == 1 else f"must be at least {limit} characters"
        return DecodeError(path, too_short)
    if rule == "maxLength":
        reason = f"must be at most {definition.get('maxLength')} characters"
        limit_name = limits.get(key) if limits is not None else None
        if limit_name is not None:
            return DecodeError(path, f"{reason} ({limit_name})", limit_name)
        return DecodeError(path, reason)
    message = str(exc.message)
    return DecodeError(path, message[len(name) + 1 :] if message.startswith(name) else message)


def not_json(raw: bytes, exc: Exception) -> DecodeError:
    """Why a payload is not JSON: invalid UTF-8 (with its offset) or the parser's word."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return DecodeError("$", f"invalid UTF-8 at byte {bad.start}")
    return DecodeError("$", f"not valid JSON: {exc}")
