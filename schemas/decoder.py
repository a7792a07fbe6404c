"""The one decoder: raw Kafka value bytes -> typed input event, or a precise error.

Why it is shaped like this:

* **Bounded work first.** The key and payload sizes are checked before any parsing, so
  a hostile or broken producer cannot make a worker parse megabytes just to reject
  them; every other thing an input controls is bounded too (string lengths, event-time
  range): the limits are constructor parameters, carried by the rules' ``[limits]``
  table (docs/rules.md, "Limits"), each rejection naming the field and the limit.
* **One contract.** Structure, types, enums, ranges and patterns are checked by the JSON
  Schemas in ``schemas/json/`` (compiled once with fastjsonschema, behind the generated
  pre-check of schemas/precheck.py), so the documents the producers read are exactly
  what runs. The configured string limits tighten the schemas' ``maxLength`` before
  they are compiled. Only what JSON Schema cannot say is checked in Python
  (schemas/values.py): exact money, calendar-valid dates, RFC 3339 -> epoch ms, the
  event-time range, future skew.
* **Errors name the field.** Every rejection is a :class:`DecodeError` with a JSON path
  (``$.amount``) and a reason a producer team can act on (schemas/explain.py turns a
  schema failure into one); the streaming shell writes it to the dead-letter topic.
  Programming errors (an unknown topic) raise instead.

Speed. The shell calls ``decode`` once per message; the budget is about 10 µs for a
200-byte transaction. Once the schema has passed, the builders trust what it proved
(see schemas/values.py).

This module is the public entry: ``Decoder``, ``DecodeError`` (defined with the value
checks in schemas/values.py), ``validate_output`` and the schema loaders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Final, TypedDict, cast

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
    TOPIC_OFFER_RESPONSES,
    TOPIC_PROFILES,
    TOPIC_RULES,
    TOPIC_TICKS,
    TOPIC_TIER_OVERRIDES,
    TOPIC_TRANSACTIONS,
    BalanceSnapshot,
    Contact,
    CustomerProfile,
    ErasureRequest,
    InputEvent,
    OfferResponse,
    RiskAssessment,
    Tick,
    TierOverride,
    Transaction,
)
from schemas.explain import explain, not_json
from schemas.precheck import with_precheck
from schemas.values import (
    NON_NEGATIVE,
    POSITIVE,
    SIGNED,
    DecodeError,
    birth_date,
    json_type,
    money_fast,
    short,
    timestamp,
    timestamp_fast,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DecodeError",
    "Decoder",
    "DecoderLimits",
    "compile_schema",
    "load_schema",
    "schema_path",
    "validate_output",
]

SCHEMA_DIR: Final = Path(__file__).resolve().parent / "json"
EXAMPLES_DIR: Final = Path(__file__).resolve().parent / "examples"

# Defaults of the limits (the same as state/rules_default.toml's [limits]).
DEFAULT_MAX_BYTES: Final = 64 * 1024
DEFAULT_MAX_KEY_BYTES: Final = 512  # 128 characters of up to 4 UTF-8 bytes
DEFAULT_MAX_ID_CHARS: Final = 128
DEFAULT_MAX_FIELD_CHARS: Final = 64
DEFAULT_MIN_YEAR: Final = 1900
DEFAULT_MAX_YEAR: Final = 2200
#: The schemas' own cap on ids: a limit may lower it, never raise it.
SCHEMA_ID_CHARS: Final = 128
#: The shortest field limit that still admits every valid value: an RFC 3339 time with
#: nanoseconds and an offset ("2024-05-01T09:15:02.123456789+08:00") is 35 characters.
MIN_FIELD_CHARS: Final = 35
#: Years the event-time range may be set to (datetime's own range, with room for the
#: core's day arithmetic on either side).
YEAR_RANGE: Final = (1000, 9000)
#: Top-level string fields held to ``max_id_chars``; every other declared string field
#: is held to ``max_field_chars``.
ID_FIELDS: Final = frozenset({"event_id", "customer_id", "account_id"})

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LIMIT_PAYLOAD: Final = "limits.max_payload_bytes"
_LIMIT_KEY: Final = "limits.max_key_bytes"
_LIMIT_ID: Final = "limits.max_id_chars"
_LIMIT_FIELD: Final = "limits.max_field_chars"
_LIMIT_MIN_YEAR: Final = "limits.min_year"
_LIMIT_MAX_YEAR: Final = "limits.max_year"
_LIMIT_SKEW: Final = "limits.max_future_skew_ms"


class DecoderLimits(TypedDict):
    """The decoder's limits as keyword arguments: ``Decoder(**rules.limits.decoder())``."""

    max_bytes: int
    max_future_skew_ms: int | None
    max_key_bytes: int
    max_id_chars: int
    max_field_chars: int
    min_year: int
    max_year: int


# --------------------------------------------------------------------------- schemas


def schema_path(topic: str) -> Path:
    """Where the JSON Schema of an (unprefixed) topic lives."""
    if topic not in (*INPUT_TOPICS, *OUTPUT_TOPICS, *TICK_TOPICS, TOPIC_AUDIT, TOPIC_RULES):
        raise ValueError(f"unknown topic {topic!r}")
    return SCHEMA_DIR / f"{topic}.schema.json"


def load_schema(topic: str) -> dict[str, Any]:
    """The parsed JSON Schema of an (unprefixed) topic."""
    return cast(dict[str, Any], orjson.loads(schema_path(topic).read_bytes()))


def compile_schema(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """The compiled validator of a parsed schema."""
    # The schemas declare draft 2020-12 and use only keywords whose meaning is the same
    # in draft 7, which is what fastjsonschema implements. "format" stays an annotation
    # (use_formats=False): the patterns and the Python checks are the one truth.
    return cast(Callable[[Any], Any], fastjsonschema.compile(schema, use_formats=False))


def _limited(
    schema: dict[str, Any], max_id_chars: int, max_field_chars: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """``schema`` with every declared string field's maxLength lowered to its limit,
    and, per field, the limit's name where the limit (not the schema) is the bound."""
    names: dict[str, str] = {}
    props = schema.get("properties", {})
    for name, prop in props.items():
        types = prop.get("type")
        if "string" not in (types if isinstance(types, list) else [types]):
            continue
        limit, limit_name = (
            (max_id_chars, _LIMIT_ID) if name in ID_FIELDS else (max_field_chars, _LIMIT_FIELD)
        )
        current = prop.get("maxLength")
        if current is None or limit < current:
            prop["maxLength"] = limit
            names[name] = limit_name
    return schema, names


def _year_start_ms(year: int) -> int:
    """Epoch ms of 1 January ``year``, 00:00 UTC."""
    return (datetime(year, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


# --------------------------------------------------------------------------- builders
# Each builder runs after schema validation, so presence, types, enums, string shapes
# and numeric ranges are already right; the fast converters only do what the schema
# cannot (exact float literals, calendar validity) and fall back to the full checkers
# for an explanation when something is still wrong. The events are built with
# positional arguments: keyword construction of a frozen slots dataclass costs about
# 2 µs more per event, a fifth of the per-message budget.

Builder = Callable[[dict[str, Any], bytes], InputEvent | ErasureRequest | DecodeError]


def _build_transaction(d: dict[str, Any], raw: bytes) -> InputEvent | DecodeError:
    ts = timestamp_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    amount = money_fast(d["amount"], "amount", raw, POSITIVE)
    if type(amount) is not Decimal:
        return cast(DecodeError, amount)
    balance_after = d.get("balance_after")
    if balance_after is not None:
        balance_after = money_fast(balance_after, "balance_after", raw, SIGNED)
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
    ts = timestamp_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    balance = money_fast(d["balance"], "balance", raw, NON_NEGATIVE)
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
    ts = timestamp_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    birth = birth_date(d.get("birth_date"))
    if isinstance(birth, DecodeError):
        return birth
    return CustomerProfile(
        d["event_id"],
        d["customer_id"],
        ts,
        d["segment"],
        d["marketing_consent"],
        birth,
        d.get("service_contact_opt_out") is True,  # optional; the schema types it
    )


def _build_assessment(d: dict[str, Any], raw: bytes) -> InputEvent | DecodeError:
    ts = timestamp_fast(d["ts"])
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
    ts = timestamp_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    return Contact(d["event_id"], d["customer_id"], ts, d["channel"], d["outcome"])


def _build_offer_response(d: dict[str, Any], raw: bytes) -> InputEvent | DecodeError:
    ts = timestamp_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    return OfferResponse(
        d["event_id"],
        d["customer_id"],
        ts,
        d["offer_event_id"],
        d["outcome"],
        d.get("channel"),
        d.get("product_id"),
    )


def _build_override(d: dict[str, Any], raw: bytes) -> InputEvent | DecodeError:
    ts = timestamp_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    until = d.get("until")
    if until is not None:
        until = timestamp(until, "until")
        if isinstance(until, DecodeError):
            return until
        if until <= ts:
            return DecodeError(
                "$.until", f"must be after ts ({short(d['ts'])}), got {short(d['until'])}"
            )
    return TierOverride(
        d["event_id"], d["customer_id"], ts, d["tier"], until, d["set_by"], d["reason"]
    )


def _build_erasure(d: dict[str, Any], raw: bytes) -> ErasureRequest | DecodeError:
    ts = timestamp_fast(d["ts"])
    if type(ts) is not int:
        return cast(DecodeError, ts)
    return ErasureRequest(d["event_id"], d["customer_id"], ts, d["requested_by"], d.get("reason"))


def _build_tick(d: dict[str, Any]) -> Tick | DecodeError:
    """The id must restate the partition and the time: a tick whose id disagrees with
    its fields is a broken clock, and its id is what replays deduplicate on."""
    ts = timestamp(d["ts"])
    if isinstance(ts, DecodeError):
        return ts
    partition = d["partition"]
    expected = f"tick-{partition}-{ts}"
    if d["event_id"] != expected:
        return DecodeError(
            "$.event_id",
            f"must be tick-<partition>-<ts_ms> = {expected!r}, got {short(d['event_id'])}",
        )
    return Tick(expected, partition, ts)


_BUILDERS: Final[Mapping[str, Builder]] = {
    TOPIC_TRANSACTIONS: _build_transaction,
    TOPIC_BALANCES: _build_balance,
    TOPIC_PROFILES: _build_profile,
    TOPIC_ASSESSMENTS: _build_assessment,
    TOPIC_CONTACTS: _build_contact,
    TOPIC_OFFER_RESPONSES: _build_offer_response,
    TOPIC_TIER_OVERRIDES: _build_override,
    TOPIC_ERASURE_REQUESTS: _build_erasure,
}

# --------------------------------------------------------------------------- public API


class Decoder:
    """Decodes input-topic payloads. Build one per worker and reuse it: the schemas are
    compiled at construction, ``decode`` itself does no I/O and keeps no state.

    The limits (docs/rules.md, "Limits"; the defaults are the rules' defaults):
    ``max_bytes`` a payload, ``max_key_bytes`` a message key (``check_key``),
    ``max_id_chars`` event_id/customer_id/account_id (at most the schemas' 128),
    ``max_field_chars`` every other string field the schemas declare, ``min_year`` ..
    ``max_year`` event times (UTC) and birth dates, and ``max_future_skew_ms`` how far
    ahead of the caller's clock an event time may be (checked when ``now_ms`` is given).
    """

    __slots__ = (
        "_field_limits",
        "_max_bytes",
        "_max_future_skew_ms",
        "_max_key_bytes",
        "_max_ms",
        "_max_year",
        "_min_ms",
        "_min_year",
        "_tick_limits",
        "_tick_validator",
        "_validators",
    )

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_future_skew_ms: int | None = None,
        *,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
        max_id_chars: int = DEFAULT_MAX_ID_CHARS,
        max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
        min_year: int = DEFAULT_MIN_YEAR,
        max_year: int = DEFAULT_MAX_YEAR,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        if max_future_skew_ms is not None and max_future_skew_ms < 0:
            raise ValueError(f"max_future_skew_ms must be >= 0, got {max_future_skew_ms}")
        if max_key_bytes <= 0:
            raise ValueError(f"max_key_bytes must be > 0, got {max_key_bytes}")
        if not 1 <= max_id_chars <= SCHEMA_ID_CHARS:
            raise ValueError(f"max_id_chars must be 1..{SCHEMA_ID_CHARS}, got {max_id_chars}")
        if max_field_chars < MIN_FIELD_CHARS:
            raise ValueError(f"max_field_chars must be >= {MIN_FIELD_CHARS}, got {max_field_chars}")
        lo, hi = YEAR_RANGE
        if not lo <= min_year <= max_year <= hi:
            raise ValueError(
                f"need {lo} <= min_year <= max_year <= {hi}, got {min_year}, {max_year}"
            )
        self._max_bytes = max_bytes
        self._max_future_skew_ms = max_future_skew_ms
        self._max_key_bytes = max_key_bytes
        self._min_year = min_year
        self._max_year = max_year
        self._min_ms = _year_start_ms(min_year)
        self._max_ms = _year_start_ms(max_year + 1) - 1
        self._validators: dict[str, Callable[[Any], Any]] = {}
        self._field_limits: dict[str, dict[str, str]] = {}
        for topic in INPUT_TOPICS:
            schema, names = _limited(load_schema(topic), max_id_chars, max_field_chars)
            self._validators[topic] = with_precheck(schema, compile_schema(schema))
            self._field_limits[topic] = names
        tick_schema, self._tick_limits = _limited(
            load_schema(TOPIC_TICKS), max_id_chars, max_field_chars
        )
        self._tick_validator = compile_schema(tick_schema)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def check_key(self, key: bytes | None) -> DecodeError | None:
        """Whether a message key is within ``max_key_bytes`` (None: no key, nothing to
        check). Call it before ``decode``: a key is read without parsing anything."""
        if key is not None and len(key) > self._max_key_bytes:
            return DecodeError(
                "key",
                f"message key {len(key)} bytes exceeds limit {self._max_key_bytes} ({_LIMIT_KEY})",
                _LIMIT_KEY,
            )
        return None

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
        doc = self._document(validate, raw, self._field_limits[topic])
        if isinstance(doc, DecodeError):
            return doc
        event = _BUILDERS[topic](doc, cast(bytes, raw))  # non-empty: _document checked
        if isinstance(event, DecodeError):
            return event
        error = self._check_time(event.ts, doc, now_ms)
        if error is not None:
            return error
        if type(event) is CustomerProfile and event.birth_date is not None:
            year = int(event.birth_date[:4])
            if year < self._min_year or year > self._max_year:
                return self._out_of_years("$.birth_date", event.birth_date, year)
        until = event.until if type(event) is TierOverride else None
        if until is not None and (until < self._min_ms or until > self._max_ms):
            return self._out_of_years("$.until", doc["until"], until)
        return event

    def decode_tick(self, raw: bytes | None, now_ms: int | None = None) -> Tick | DecodeError:
        """Decode one message value of the ``ticks`` topic (same checks as ``decode``:
        size, JSON, schema, RFC 3339, event-time range, future skew) plus the id rule
        ``event_id == f"tick-{partition}-{ts_ms}"``. Whether ``partition`` equals the
        Kafka partition the tick was read from is for the caller to check."""
        doc = self._document(self._tick_validator, raw, self._tick_limits)
        if isinstance(doc, DecodeError):
            return doc
        tick = _build_tick(doc)
        if isinstance(tick, DecodeError):
            return tick
        error = self._check_time(tick.ts, doc, now_ms)
        return tick if error is None else error

    def _check_time(self, ts: int, doc: dict[str, Any], now_ms: int | None) -> DecodeError | None:
        """The event time within the years and not too far ahead of the caller's clock."""
        if ts < self._min_ms or ts > self._max_ms:
            return self._out_of_years("$.ts", doc["ts"], ts)
        skew = self._max_future_skew_ms
        if skew is not None and now_ms is not None and ts > now_ms + skew:
            return DecodeError(
                "$.ts",
                f"{doc['ts']} is {ts - now_ms} ms in the future "
                f"(max skew {skew} ms, {_LIMIT_SKEW})",
                _LIMIT_SKEW,
            )
        return None

    def _out_of_years(self, path: str, text: str, value: int) -> DecodeError:
        """``value``: a year, or an epoch-ms time (compared with the range's ends)."""
        early = value < self._min_year if path == "$.birth_date" else value < self._min_ms
        if early:
            return DecodeError(
                path,
                f"{short(text)} is before the year {self._min_year} ({_LIMIT_MIN_YEAR})",
                _LIMIT_MIN_YEAR,
            )
        return DecodeError(
            path,
            f"{short(text)} is after the year {self._max_year} ({_LIMIT_MAX_YEAR})",
            _LIMIT_MAX_YEAR,
        )

    def _document(
        self, validate: Callable[[Any], Any], raw: bytes | None, limits: Mapping[str, str]
    ) -> dict[str, Any] | DecodeError:
        """Size limit, JSON parse and schema check: the steps every topic shares."""
        if not raw:
            return DecodeError("$", "empty payload")
        size = len(raw)
        if size > self._max_bytes:
            return DecodeError(
                "$",
                f"payload {size} bytes exceeds limit {self._max_bytes} ({_LIMIT_PAYLOAD})",
                _LIMIT_PAYLOAD,
            )
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return not_json(bytes(raw), exc)
        if type(doc) is not dict:
            return DecodeError("$", f"must be a JSON object, got {json_type(doc)}")
        try:
            validate(doc)
        except fastjsonschema.JsonSchemaValueException as exc:
            return explain(exc, raw, limits=limits)
        return cast(dict[str, Any], doc)


@cache
def _output_validator(topic: str) -> Callable[[Any], Any]:
    return compile_schema(load_schema(topic))


def validate_output(topic: str, record: dict[str, Any]) -> None:
    """Check a record the service emits against its output-topic schema (the audit
    topic's too: the core audits tier overrides).

    Raises ``ValueError("<topic>: $.field: reason")``; used by tests and available to
    the sinks as a guard. ``topic`` is the unprefixed output topic name.
    """
    if topic not in OUTPUT_TOPICS and topic != TOPIC_AUDIT:
        raise ValueError(f"not an output topic: {topic!r} (expected one of {OUTPUT_TOPICS})")
    try:
        _output_validator(topic)(record)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ValueError(f"{topic}: {explain(exc, None, output=True).describe()}") from None
