"""The one decoder: raw Kafka value bytes -> typed input event, or a precise error.

Why it is shaped like this:

* **Bounded work first.** The size limit is checked before any parsing, so a hostile
  or broken producer cannot make a worker parse megabytes just to reject them.
* **One contract.** Structure, types, enums, ranges and patterns are checked by the JSON
  Schemas in ``schemas/json/`` (compiled once with fastjsonschema), so the documents the
  producers read are exactly what runs. Only what JSON Schema cannot say is checked in
  Python: exact money, calendar-valid dates, RFC 3339 -> epoch ms, future skew.
* **Errors name the field.** Every rejection is a :class:`DecodeError` with a JSON path
  (``$.amount``) and a reason a producer team can act on; the streaming shell writes it
  to the dead-letter topic. Programming errors (an unknown topic) raise instead.

Money exactness. orjson is fast but turns every non-integer JSON number into a binary
float, and a float cannot tell ``0.1`` from ``0.10000000000000001``. So a money field is
never converted from the float: decimal strings and JSON integers are exact as parsed;
for a JSON number with a fraction or exponent the decoder reads the number's literal
text from the raw bytes and builds the ``Decimal`` from that. The literal is located
with a key-anchored regex, which is provably unambiguous when the payload contains no
backslash (so no escaped key can masquerade) and the key occurs exactly once; in any
other case the payload is re-parsed with the standard library's ``json`` using
``parse_float=Decimal`` (slower, but exact and rare). Money is then limited to at most
8 decimal places and a magnitude below 10^15, which keeps every value within 23
significant digits and leaves the core headroom under ``decimal``'s default 28-digit
context when it sums them. (The schemas' numeric money bounds are inclusive because
generic validators compare JSON numbers as floats; the decoder applies the exact limit.)

Speed. The shell calls ``decode`` once per message; the budget is about 10 µs for a
200-byte transaction. Once the schema has passed, the builders trust what it proved
(string money shape, integer bounds, timestamp shape) instead of checking it twice;
tests/schemas checks with hypothesis that the schema and the Python checks accept
exactly the same values, which is what makes that trust sound.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Final, cast

import fastjsonschema
import orjson

from schemas.events import (
    INPUT_TOPICS,
    OUTPUT_TOPICS,
    TICK_TOPICS,
    TOPIC_ASSESSMENTS,
    TOPIC_AUDIT,
    TOPIC_BALANCES,
    TOPIC_CONTACTS,
    TOPIC_ERASURE_REQUESTS,
    TOPIC_PROFILES,
    TOPIC_TICKS,
    TOPIC_TRANSACTIONS,
    BalanceSnapshot,
    Contact,
    CustomerProfile,
    ErasureRequest,
    InputEvent,
    RiskAssessment,
    Tick,
    Transaction,
)

SCHEMA_DIR: Final = Path(__file__).resolve().parent / "json"
EXAMPLES_DIR: Final = Path(__file__).resolve().parent / "examples"

DEFAULT_MAX_BYTES: Final = 64 * 1024
MAX_MONEY_DECIMALS: Final = 8
MONEY_LIMIT: Final = Decimal(10) ** 15  # magnitude must be strictly below this
_INT_LIMIT: Final = 10**15
_FLOAT_LIMIT: Final = 1e15
_MINUS: Final = ord("-")
_BACKSLASH: Final = ord("\\")  # an int: `int in bytes` is several times faster

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
#: Plain decimal notation (the shape the schemas' money patterns allow, minus limits).
_DECIMAL_TEXT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_TS_TEXT: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
#: A date and a time without an offset: the one mistake worth its own message.
_NAIVE_TEXT: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
)
_DATE_TEXT: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_REPR_LIMIT: Final = 40


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Why a payload was rejected: where (JSON path, ``$`` = the whole payload) and why."""

    field: str
    reason: str

    def describe(self) -> str:
        """One line for logs and the dead-letter record, e.g. ``$.amount: must be > 0``."""
        return f"{self.field}: {self.reason}"


# --------------------------------------------------------------------------- schemas


def schema_path(topic: str) -> Path:
    """Where the JSON Schema of an (unprefixed) topic lives."""
    if topic not in (*INPUT_TOPICS, *OUTPUT_TOPICS, *TICK_TOPICS, TOPIC_AUDIT):
        raise ValueError(f"unknown topic {topic!r}")
    return SCHEMA_DIR / f"{topic}.schema.json"


def load_schema(topic: str) -> dict[str, Any]:
    """The parsed JSON Schema of an (unprefixed) topic."""
    return cast(dict[str, Any], orjson.loads(schema_path(topic).read_bytes()))


def _compile(topic: str) -> Callable[[Any], Any]:
    # The schemas declare draft 2020-12 and use only keywords whose meaning is the same
    # in draft 7, which is what fastjsonschema implements. "format" stays an annotation
    # (use_formats=False): the patterns and the Python checks below are the one truth.
    return cast(Callable[[Any], Any], fastjsonschema.compile(load_schema(topic), use_formats=False))


# --------------------------------------------------------------------------- fast path
# The compiled validators raise with the detail ``_explain`` turns into the reason, and
# they are the one contract. For speed, each schema also gets a generated *pre-check*
# that can only conclude "certainly valid": it covers the keywords the input schemas
# use, each checked at least as strictly as fastjsonschema checks it (exact types, no
# floats for "integer", the validator's own compiled regexes). On anything else it
# hands the document to the compiled validator -- and a schema using a keyword it does
# not know gets no pre-check at all -- so every rejection and every reason is exactly
# what it always was; valid documents just skip the generic code.

#: Annotations (and "format", which is compiled with use_formats=False): no effect.
_ANNOTATIONS: Final = frozenset({"description", "title", "format", "$comment", "examples"})
_PROPERTY_KEYWORDS: Final = (
    frozenset(
        {
            "type",
            "minLength",
            "maxLength",
            "pattern",
            "enum",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
        }
    )
    | _ANNOTATIONS
)
_SCHEMA_KEYWORDS: Final = (
    frozenset({"$schema", "$id", "type", "properties", "required", "additionalProperties"})
    | _ANNOTATIONS
)
_JSON_TYPES: Final = frozenset({"string", "number", "integer", "boolean", "null"})
#: A pattern whose matches include every non-empty str.isprintable() string (printable
#: strings have no C0 control character nor DEL): the cheap test goes first.
_NO_CONTROLS: Final = "^[^\\u0000-\\u001f\\u007f]+$"
_BOUNDS: Final = {
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
}


def _property_check(
    name: str,
    prop: dict[str, Any],
    required: bool,
    regexes: Mapping[str, re.Pattern[str]],
    env: dict[str, Any],
) -> list[str] | None:
    """Source lines that fall back to the validator unless ``v`` (the property's value)
    passes; None when the property uses something the pre-check does not cover.
    ``required``: the generated code has already checked that the key is present."""
    if not isinstance(prop, dict) or not set(prop) <= _PROPERTY_KEYWORDS or "type" not in prop:
        return None
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    if not types or not all(isinstance(t, str) and t in _JSON_TYPES for t in types):
        return None
    n = len(env)
    allowed: list[str] = []  # one condition per accepted Python type
    if "null" in types:
        enum = prop.get("enum")
        if enum is None or None in enum:
            allowed.append("v is None")
    if "boolean" in types and "enum" not in prop:
        allowed.append("type(v) is bool")
    numeric = [t for t in ("number", "integer") if t in types]
    if numeric and "enum" not in prop:
        cond = "type(v) is int"
        if numeric != ["integer"]:
            cond = "(type(v) is int or type(v) is float)"
        for key, op in _BOUNDS.items():
            if key in prop:
                bound = prop[key]
                if type(bound) not in (int, float):
                    return None
                cond += f" and v {op} {bound!r}"
        allowed.append(cond)
    if "string" in types:
        cond = "type(v) is str"
        if "minLength" in prop or "maxLength" in prop:
            lo, hi = prop.get("minLength", 0), prop.get("maxLength")
            if type(lo) is not int or (hi is not None and type(hi) is not int):
                return None
            cond += f" and {lo} <= len(v)" + (f" <= {hi}" if hi is not None else "")
        if "enum" in prop:
            values = prop["enum"]
            if not isinstance(values, list) or not all(x is None or type(x) is str for x in values):
                return None
            env[f"E{n}"] = frozenset(x for x in values if x is not None)
            cond += f" and v in E{n}"
        if "pattern" in prop:
            regex = regexes.get(prop["pattern"])
            if regex is None:
                return None
            env[f"P{n}"] = regex.search
            test = f"P{n}(v) is not None"
            if prop["pattern"] == _NO_CONTROLS and prop.get("minLength", 0) >= 1:
                test = f"(v.isprintable() or {test})"
            cond += f" and {test}"
        allowed.append(cond)
    if not allowed:
        return None
    env[f"K{n}"] = name
    passes = " or ".join(f"({c})" for c in allowed)
    if required:
        return [f"    v = d[K{n}]", f"    if not ({passes}):", "        return VALIDATE(d)"]
    return [
        f"    v = d.get(K{n}, MISSING)",
        f"    if v is not MISSING and not ({passes}):",
        "        return VALIDATE(d)",
    ]


def _with_precheck(schema: dict[str, Any], validate: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``validate`` behind a generated "certainly valid" pre-check (see above); just
    ``validate`` when the schema uses anything the pre-check does not cover. Called
    with JSON objects only (``Decoder._document`` checks that first)."""
    if not set(schema) <= _SCHEMA_KEYWORDS or schema.get("type") != "object":
        return validate
    if schema.get("additionalProperties", True) is not True:
        return validate
    props = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(props, dict) or not isinstance(required, list):
        return validate
    if not all(isinstance(k, str) for k in required):
        return validate
    regexes = getattr(validate, "__globals__", {}).get("REGEX_PATTERNS", {})
    env: dict[str, Any] = {"MISSING": object(), "VALIDATE": validate}
    lines = ["def validate_with_precheck(d):"]
    for i, key in enumerate(required):
        env[f"R{i}"] = key
        lines += [f"    if R{i} not in d:", "        return VALIDATE(d)"]
    for name, prop in props.items():
        check = _property_check(name, prop, name in required, regexes, env)
        if check is None:
            return validate
        lines += check
    lines.append("    return d")
    # the source is built above from the schema; its own file name keeps profiles readable
    exec(compile("\n".join(lines), f"<precheck {schema.get('$id', '?')}>", "exec"), env)
    return cast(Callable[[Any], Any], env["validate_with_precheck"])


# --------------------------------------------------------------------------- helpers


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(value: object) -> str:
    """repr() cut short: reasons end up in logs and dead letters, payloads may be huge."""
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


_LITERAL_RES: dict[str, re.Pattern[bytes]] = {}


def _literal_re(key: str) -> re.Pattern[bytes]:
    pattern = _LITERAL_RES.get(key)
    if pattern is None:
        ws = rb"[ \t\n\r]*"
        # Groups: the whole literal, its fraction (with the dot), its exponent.
        number = rb"(-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)"
        pattern = re.compile(b'"' + re.escape(key.encode()) + b'"' + ws + b":" + ws + number)
        _LITERAL_RES[key] = pattern
    return pattern


def _exact_number(raw: bytes, key: str) -> Decimal | None:
    """The top-level ``key``'s JSON number exactly as written in ``raw``.

    Fast path: without any backslash in the payload every ``"key":`` in the bytes is a
    real object key (quotes strictly alternate open/close), so a single match must be
    the top-level one. Otherwise re-parse with ``parse_float=Decimal``.
    """
    if _BACKSLASH not in raw:
        found = _literal_re(key).findall(raw)
        if len(found) == 1:
            return Decimal(found[0][0].decode("ascii"))
    try:
        exact = json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError):
        return None
    value = exact.get(key) if isinstance(exact, dict) else None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return None


_POSITIVE: Final = "positive"
_NON_NEGATIVE: Final = "non-negative"
_SIGNED: Final = "signed"


def _money(value: object, key: str, raw: bytes, sign: str) -> Decimal | DecodeError:
    """A money field as an exact Decimal, or why it is not acceptable."""
    path = "$." + key
    kind = type(value)
    amount: Decimal | None
    if kind is str:
        text = cast(str, value)
        if _DECIMAL_TEXT.fullmatch(text) is None:
            return DecodeError(path, f"not a decimal number: {_short(text)}")
        amount = Decimal(text)
    elif kind is int:
        amount = Decimal(cast(int, value))
    elif kind is float:
        if not math.isfinite(cast(float, value)):
            return DecodeError(path, "must be a finite number")
        amount = _exact_number(raw, key)
        if amount is None:
            return DecodeError(path, "could not read the exact number; send a decimal string")
    else:
        return DecodeError(path, f"must be a number or a decimal string, got {_json_type(value)}")
    if not amount.is_finite():
        return DecodeError(path, "must be a finite number")
    if sign == _POSITIVE and amount <= 0:
        return DecodeError(path, "must be > 0")
    if sign == _NON_NEGATIVE and (amount < 0 or amount.is_signed()):
        return DecodeError(path, "must be >= 0")  # "-0" too: the schema has no minus sign
    if abs(amount) >= MONEY_LIMIT:
        return DecodeError(path, "magnitude must be < 10^15")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_MONEY_DECIMALS:
        return DecodeError(path, f"more than {MAX_MONEY_DECIMALS} decimal places")
    return amount


def _ts(value: object, key: str = "ts") -> int | DecodeError:
    """RFC 3339 with an offset -> epoch ms (UTC), floored to the millisecond."""
    path = "$." + key
    if not isinstance(value, str):
        return DecodeError(path, f"must be an RFC 3339 date-time string, got {_json_type(value)}")
    if _TS_TEXT.fullmatch(value) is None:
        if _NAIVE_TEXT.fullmatch(value) is not None:
            return DecodeError(
                path, f"naive date-time {_short(value)} has no UTC offset (add Z or ±hh:mm)"
            )
        example = "2024-05-01T12:00:00Z"
        return DecodeError(
            path, f"not an RFC 3339 date-time with offset (e.g. {example}): {_short(value)}"
        )
    try:
        # Upper-casing is safe (only digits, separators and T/Z) and lets the RFC's
        # lower-case t/z through fromisoformat.
        moment = datetime.fromisoformat(value.upper())
    except ValueError as exc:
        return DecodeError(path, f"not a valid date-time {_short(value)}: {exc}")
    return (moment - _EPOCH) // _ONE_MS


def _birth_date(value: object) -> str | DecodeError | None:
    if value is None:
        return None
    if not isinstance(value, str) or _DATE_TEXT.fullmatch(value) is None:
        return DecodeError("$.birth_date", f"must be YYYY-MM-DD or null, got {_short(value)}")
    try:
        date.fromisoformat(value)
    except ValueError:
        return DecodeError("$.birth_date", f"not a valid calendar date: {_short(value)}")
    return value


# --------------------------------------------------------------------------- builders
# Each builder runs after schema validation, so presence, types, enums, string shapes
# and numeric ranges are already right; the fast converters below only do what the
# schema cannot (exact float literals, calendar validity) and fall back to the full
# checkers above for an explanation when something is still wrong. The events are
# built with positional arguments: keyword construction of a frozen slots dataclass
# costs about 2 µs more per event, a fifth of the per-message budget.

Builder = Callable[[dict[str, Any], bytes], InputEvent | ErasureRequest | DecodeError]


def _money_fast(value: object, key: str, raw: bytes, sign: str) -> Decimal | DecodeError:
    kind = type(value)
    if kind is str:
        # The schema's pattern already enforces the sign, magnitude and decimal places.
        return Decimal(value)  # type: ignore[arg-type]
    if kind is int:
        # The schema enforced the sign; its upper bound is inclusive (see _money).
        if -_INT_LIMIT < value < _INT_LIMIT:  # type: ignore[operator]
            return Decimal(value)  # type: ignore[arg-type]
    elif _BACKSLASH not in raw and -_FLOAT_LIMIT < value < _FLOAT_LIMIT:  # type: ignore[operator]
        # Rounding to binary is monotonic and 0 and 10^15 are exact floats, so a float
        # strictly inside the schema's bounds means the exact value is inside too; only
        # the sign of zero and the decimal places are left, checked on the literal text.
        found = _literal_re(key).findall(raw)
        if len(found) == 1:
            literal, fraction, exponent = found[0]
            if (
                not exponent
                and len(fraction) <= MAX_MONEY_DECIMALS + 1  # the dot and the digits
                and (sign == _SIGNED or literal[0] != _MINUS)
            ):
                return Decimal(literal.decode("ascii"))
    return _money(value, key, raw, sign)


#: "YYYY-MM-DDTHH:MM:SS" + offset -> epoch ms of that second, for the common shape with
#: exactly three fraction digits: its epoch ms is that plus the digits, and whether it
#: parses does not depend on them. A bounded memo of what fromisoformat said.
_TS_SECONDS: dict[str, int] = {}
_TS_CACHE_MAX: Final = 16_384  # ~4.5 h of distinct seconds; a few MB at most
_MILLIS: Final = {f"{i:03d}": i for i in range(1000)}


def _ts_fast(value: str) -> int | DecodeError:
    key = None
    if (
        type(value) is str
        and len(value) > 23
        and value[19] == "."
        and value[23] in "Zz+-"
        and value[11:13] != "24"  # hour 24 is only ever valid at .000, if at all
    ):
        ms = _MILLIS.get(value[20:23])
        if ms is not None:
            key = value[:19] + value[23:]
            base = _TS_SECONDS.get(key)
            if base is not None:
                return base + ms
    try:
        ts: int = (datetime.fromisoformat(value.upper()) - _EPOCH) // _ONE_MS
    except ValueError:
        return _ts(value)
    if key is not None:
        if len(_TS_SECONDS) >= _TS_CACHE_MAX:
            _TS_SECONDS.clear()
        _TS_SECONDS[key] = ts - _MILLIS[value[20:23]]
    return ts


def _build_transaction(d: dict[str, Any], raw: bytes) -> InputEvent | DecodeError:
    ts = _ts_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    amount = _money_fast(d["amount"], "amount", raw, _POSITIVE)
    if type(amount) is not Decimal:
        return cast(DecodeError, amount)
    balance_after = d.get("balance_after")
    if balance_after is not None:
        balance_after = _money_fast(balance_after, "balance_after", raw, _SIGNED)
        if type(balance_after) is not Decimal:
            return cast(DecodeError, balance_after)
    risk = d.get("product_risk")
    return Transaction(
        d["event_id"],
        d["customer_id"],
        d["account_id"],
        ts,
        d["type"],
        amount,
        d["currency"],
        d["channel"],
        balance_after,
        None if risk is None else int(risk[1]),
    )


def _build_balance(d: dict[str, Any], raw: bytes) -> InputEvent | DecodeError:
    ts = _ts_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    balance = _money_fast(d["balance"], "balance", raw, _NON_NEGATIVE)
    if type(balance) is not Decimal:
        return cast(DecodeError, balance)
    return BalanceSnapshot(
        d["event_id"],
        d["customer_id"],
        d["account_id"],
        ts,
        d["product"],
        balance,
        d["currency"],
    )


def _build_profile(d: dict[str, Any], raw: bytes) -> InputEvent | DecodeError:
    ts = _ts_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    birth_date = _birth_date(d.get("birth_date"))
    if isinstance(birth_date, DecodeError):
        return birth_date
    return CustomerProfile(
        d["event_id"],
        d["customer_id"],
        ts,
        d["segment"],
        d["marketing_consent"],
        birth_date,
    )


def _build_assessment(d: dict[str, Any], raw: bytes) -> InputEvent | DecodeError:
    ts = _ts_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    return RiskAssessment(
        d["event_id"],
        d["customer_id"],
        ts,
        int(d["score"]),  # the schema allows 70.0 (an integer in JSON Schema)
        float(d["investment_experience_years"]),
    )


def _build_contact(d: dict[str, Any], raw: bytes) -> InputEvent | DecodeError:
    ts = _ts_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    return Contact(d["event_id"], d["customer_id"], ts, d["channel"], d["outcome"])


def _build_erasure(d: dict[str, Any], raw: bytes) -> ErasureRequest | DecodeError:
    ts = _ts_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    return ErasureRequest(d["event_id"], d["customer_id"], ts, d["requested_by"], d.get("reason"))


def _build_tick(d: dict[str, Any]) -> Tick | DecodeError:
    """The id must restate the partition and the time: a tick whose id disagrees with
    its fields is a broken clock, and its id is what replays deduplicate on."""
    ts = _ts(d["ts"])
    if isinstance(ts, DecodeError):
        return ts
    partition = d["partition"]
    expected = f"tick-{partition}-{ts}"
    if d["event_id"] != expected:
        return DecodeError(
            "$.event_id",
            f"must be tick-<partition>-<ts_ms> = {expected!r}, got {_short(d['event_id'])}",
        )
    return Tick(expected, partition, ts)


_BUILDERS: Final[Mapping[str, Builder]] = {
    TOPIC_TRANSACTIONS: _build_transaction,
    TOPIC_BALANCES: _build_balance,
    TOPIC_PROFILES: _build_profile,
    TOPIC_ASSESSMENTS: _build_assessment,
    TOPIC_CONTACTS: _build_contact,
    TOPIC_ERASURE_REQUESTS: _build_erasure,
}

# Field-specific explanations for schema failures: the schema says "no", these say why
# in the same words the happy path would use.
_MONEY_SIGNS: Final[Mapping[str, str]] = {
    "amount": _POSITIVE,
    "balance": _NON_NEGATIVE,
    "balance_after": _SIGNED,
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


def _explain(
    exc: fastjsonschema.JsonSchemaValueException, raw: bytes | None, output: bool = False
) -> DecodeError:
    """Turn a fastjsonschema failure into a field path and a reason."""
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
            money = _money(value, key, raw, _MONEY_SIGNS[key])
            if isinstance(money, DecodeError):
                return money
        elif key == "ts":
            ts = _ts(value)
            if isinstance(ts, DecodeError):
                return ts
        elif key == "birth_date":
            birth = _birth_date(value)
            if isinstance(birth, DecodeError):
                return birth
    if rule == "type":
        wanted = definition.get("type")
        names = wanted if isinstance(wanted, list) else [wanted]
        words = " or ".join(_TYPE_WORDS.get(str(n), str(n)) for n in names)
        return DecodeError(path, f"must be {words}, got {_json_type(value)}")
    if rule == "enum":
        allowed = ", ".join(str(v) for v in definition.get("enum", ()) if v is not None)
        return DecodeError(path, f"unknown value {_short(value)} (allowed: {allowed})")
    if rule == "const":
        return DecodeError(path, f"must be {definition.get('const')!r}, got {_short(value)}")
    if rule == "pattern":
        reason = _PATTERN_REASONS.get(f"{key}@out" if output else key) or _PATTERN_REASONS.get(key)
        if reason is None:
            reason = f"must match {definition.get('pattern')}"
        return DecodeError(path, f"{reason}, got {_short(value)}")
    bounds = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
    }
    if rule in bounds:
        bound = definition.get(rule)
        return DecodeError(path, f"must be {bounds[rule]} {bound}, got {_short(value)}")
    if rule == "minLength":
        limit = definition.get("minLength")
        too_short = "must not be empty" if limit == 1 else f"must be at least {limit} characters"
        return DecodeError(path, too_short)
    if rule == "maxLength":
        return DecodeError(path, f"must be at most {definition.get('maxLength')} characters")
    message = str(exc.message)
    return DecodeError(path, message[len(name) + 1 :] if message.startswith(name) else message)


def _not_json(raw: bytes, exc: Exception) -> DecodeError:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return DecodeError("$", f"invalid UTF-8 at byte {bad.start}")
    return DecodeError("$", f"not valid JSON: {exc}")


# --------------------------------------------------------------------------- public API


class Decoder:
    """Decodes input-topic payloads. Build one per worker and reuse it: the schemas are
    compiled at construction, ``decode`` itself does no I/O and keeps no state."""

    __slots__ = ("_max_bytes", "_max_future_skew_ms", "_tick_validator", "_validators")

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, max_future_skew_ms: int | None = None
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        if max_future_skew_ms is not None and max_future_skew_ms < 0:
            raise ValueError(f"max_future_skew_ms must be >= 0, got {max_future_skew_ms}")
        self._max_bytes = max_bytes
        self._max_future_skew_ms = max_future_skew_ms
        self._validators = {
            topic: _with_precheck(load_schema(topic), _compile(topic)) for topic in INPUT_TOPICS
        }
        self._tick_validator = _compile(TOPIC_TICKS)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def decode(
        self, topic: str, raw: bytes | None, now_ms: int | None = None
    ) -> InputEvent | ErasureRequest | DecodeError:
        """Decode one message value from the (unprefixed) input ``topic``.

        ``now_ms`` is the caller's clock (the core never reads one); the future-skew
        check runs only when both it and ``max_future_skew_ms`` are given.
        Raises ``ValueError`` for a topic that is not an input topic.
        """
        validate = self._validators.get(topic)
        if validate is None:
            hint = (
                " (ticks are not customer events: use decode_tick)" if topic in TICK_TOPICS else ""
            )
            raise ValueError(
                f"not an input topic: {topic!r} (expected one of {INPUT_TOPICS}){hint}"
            )
        doc = self._document(validate, raw)
        if isinstance(doc, DecodeError):
            return doc
        event = _BUILDERS[topic](doc, cast(bytes, raw))  # non-empty: _document checked
        if isinstance(event, DecodeError):
            return event
        skew = self._max_future_skew_ms
        if skew is not None and now_ms is not None and event.ts > now_ms + skew:
            ahead = event.ts - now_ms
            return DecodeError(
                "$.ts", f"{doc['ts']} is {ahead} ms in the future (max skew {skew} ms)"
            )
        return event

    def decode_tick(self, raw: bytes | None, now_ms: int | None = None) -> Tick | DecodeError:
        """Decode one message value of the ``ticks`` topic (same checks as ``decode``:
        size, JSON, schema, RFC 3339, future skew) plus the id rule
        ``event_id == f"tick-{partition}-{ts_ms}"``. Whether ``partition`` equals the
        Kafka partition the tick was read from is for the caller to check."""
        doc = self._document(self._tick_validator, raw)
        if isinstance(doc, DecodeError):
            return doc
        tick = _build_tick(doc)
        if isinstance(tick, DecodeError):
            return tick
        skew = self._max_future_skew_ms
        if skew is not None and now_ms is not None and tick.ts > now_ms + skew:
            ahead = tick.ts - now_ms
            return DecodeError(
                "$.ts", f"{doc['ts']} is {ahead} ms in the future (max skew {skew} ms)"
            )
        return tick

    def _document(
        self, validate: Callable[[Any], Any], raw: bytes | None
    ) -> dict[str, Any] | DecodeError:
        """Size limit, JSON parse and schema check: the steps every topic shares."""
        if not raw:
            return DecodeError("$", "empty payload")
        size = len(raw)
        if size > self._max_bytes:
            return DecodeError("$", f"payload {size} bytes exceeds limit {self._max_bytes}")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _not_json(bytes(raw), exc)
        if type(doc) is not dict:
            return DecodeError("$", f"must be a JSON object, got {_json_type(doc)}")
        try:
            validate(doc)
        except fastjsonschema.JsonSchemaValueException as exc:
            return _explain(exc, raw)
        return cast(dict[str, Any], doc)


@cache
def _output_validator(topic: str) -> Callable[[Any], Any]:
    return _compile(topic)


def validate_output(topic: str, record: dict[str, Any]) -> None:
    """Check a record the service emits against its output-topic schema.

    Raises ``ValueError("<topic>: $.field: reason")``; used by tests and available to
    the sinks as a guard. ``topic`` is the unprefixed output topic name.
    """
    if topic not in OUTPUT_TOPICS:
        raise ValueError(f"not an output topic: {topic!r} (expected one of {OUTPUT_TOPICS})")
    try:
        _output_validator(topic)(record)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ValueError(f"{topic}: {_explain(exc, None, output=True).describe()}") from None
