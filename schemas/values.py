"""Wire-format values: the JSON an input carries -> exact Python values, or why not.

Money exactness. orjson is fast but turns every non-integer JSON number into a binary
float, and a float cannot tell ``0.1`` from ``0.10000000000000001``. So a money field is
never converted from the float: decimal strings and JSON integers are exact as parsed;
for a JSON number with a fraction or exponent the literal text is read from the raw
bytes and the ``Decimal`` built from that. The literal is located with a key-anchored
regex, which is provably unambiguous when the payload contains no backslash (so no
escaped key can masquerade) and the key occurs exactly once; in any other case the
payload is re-parsed with the standard library's ``json`` using ``parse_float=Decimal``
(slower, but exact and rare). Money is then limited to at most 8 decimal places and a
magnitude below 10^15, which keeps every value within 23 significant digits and leaves
the core headroom under ``decimal``'s default 28-digit context when it sums them. (The
schemas' numeric money bounds are inclusive because generic validators compare JSON
numbers as floats; these checks apply the exact limit.)

Two speeds. ``money``/``timestamp``/``birth_date`` check everything and say what is
wrong; ``money_fast``/``timestamp_fast`` run after the JSON Schema has passed and trust
what it proved (string money shape, integer bounds, timestamp shape), falling back to
the full checkers for an explanation. tests/schemas checks with hypothesis that the
schema and these checks accept exactly the same values, which is what makes that trust
sound.

``DecodeError`` lives here because every value check speaks it; ``schemas.decoder`` is
its public entry.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final, cast

__all__ = [
    "MAX_MONEY_DECIMALS",
    "MONEY_LIMIT",
    "NON_NEGATIVE",
    "POSITIVE",
    "SIGNED",
    "DecodeError",
    "birth_date",
    "json_type",
    "money",
    "money_fast",
    "short",
    "timestamp",
    "timestamp_fast",
]

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
    """Why a payload was rejected: where (JSON path, ``$`` = the whole payload) and why.

    ``limit`` names the configured bound a rejection comes from (``limits.max_key_bytes``
    ...; None for everything else), so the shell can label such dead letters by limit.
    It does not take part in equality: a rejection is the same whatever named it."""

    field: str
    reason: str
    limit: str | None = dataclasses.field(default=None, compare=False)

    def describe(self) -> str:
        """One line for logs and the dead-letter record, e.g. ``$.amount: must be > 0``."""
        return f"{self.field}: {self.reason}"


def json_type(value: object) -> str:
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


def short(value: object) -> str:
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


POSITIVE: Final = "positive"
NON_NEGATIVE: Final = "non-negative"
SIGNED: Final = "signed"


def money(value: object, key: str, raw: bytes, sign: str) -> Decimal | DecodeError:
    """A money field as an exact Decimal, or why it is not acceptable."""
    path = "$." + key
    kind = type(value)
    amount: Decimal | None
    if kind is str:
        text = cast(str, value)
        if _DECIMAL_TEXT.fullmatch(text) is None:
            return DecodeError(path, f"not a decimal number: {short(text)}")
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
        return DecodeError(path, f"must be a number or a decimal string, got {json_type(value)}")
    if not amount.is_finite():
        return DecodeError(path, "must be a finite number")
    if sign == POSITIVE and amount <= 0:
        return DecodeError(path, "must be > 0")
    if sign == NON_NEGATIVE and (amount < 0 or amount.is_signed()):
        return DecodeError(path, "must be >= 0")  # "-0" too: the schema has no minus sign
    if abs(amount) >= MONEY_LIMIT:
        return DecodeError(path, "magnitude must be < 10^15")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_MONEY_DECIMALS:
        return DecodeError(path, f"more than {MAX_MONEY_DECIMALS} decimal places")
    return amount


def timestamp(value: object, key: str = "ts") -> int | DecodeError:
    """RFC 3339 with an offset -> epoch ms (UTC), floored to the millisecond."""
    path = "$." + key
    if not isinstance(value, str):
        return DecodeError(path, f"must be an RFC 3339 date-time string, got {json_type(value)}")
    if _TS_TEXT.fullmatch(value) is None:
        if _NAIVE_TEXT.fullmatch(value) is not None:
            return DecodeError(
                path, f"naive date-time {short(value)} has no UTC offset (add Z or ±hh:mm)"
            )
        example = "2024-05-01T12:00:00Z"
        return DecodeError(
            path, f"not an RFC 3339 date-time with offset (e.g. {example}): {short(value)}"
        )
    try:
        # Upper-casing is safe (only digits, separators and T/Z) and lets the RFC's
        # lower-case t/z through fromisoformat.
        moment = datetime.fromisoformat(value.upper())
    except ValueError as exc:
        return DecodeError(path, f"not a valid date-time {short(value)}: {exc}")
    return (moment - _EPOCH) // _ONE_MS


def birth_date(value: object) -> str | DecodeError | None:
    """A YYYY-MM-DD calendar date (kept as its text), None for null, or why not."""
    if value is None:
        return None
    if not isinstance(value, str) or _DATE_TEXT.fullmatch(value) is None:
        return DecodeError("$.birth_date", f"must be YYYY-MM-DD or null, got {short(value)}")
    try:
        date.fromisoformat(value)
    except ValueError:
        return DecodeError("$.birth_date", f"not a valid calendar date: {short(value)}")
    return value


def money_fast(value: object, key: str, raw: bytes, sign: str) -> Decimal | DecodeError:
    """``money`` for a value the schema has accepted: only what it cannot prove is left."""
    kind = type(value)
    if kind is str:
        # The schema's pattern already enforces the sign, magnitude and decimal places.
        return Decimal(value)  # type: ignore[arg-type]
    if kind is int:
        # The schema enforced the sign; its upper bound is inclusive (see money).
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
                and (sign == SIGNED or literal[0] != _MINUS)
            ):
                return Decimal(literal.decode("ascii"))
    return money(value, key, raw, sign)


#: "YYYY-MM-DDTHH:MM:SS" + offset -> epoch ms of that second, for the common shape with
#: exactly three fraction digits: its epoch ms is that plus the digits, and whether it
#: parses does not depend on them. A bounded memo of what fromisoformat said.
_TS_SECONDS: dict[str, int] = {}
_TS_CACHE_MAX: Final = 16_384  # ~4.5 h of distinct seconds; a few MB at most
_MILLIS: Final = {f"{i:03d}": i for i in range(1000)}


def timestamp_fast(value: str) -> int | DecodeError:
    """``timestamp`` for a value that matched the schema's pattern (memoised per second)."""
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
        return timestamp(value)
    if key is not None:
        if len(_TS_SECONDS) >= _TS_CACHE_MAX:
            _TS_SECONDS.clear()
        _TS_SECONDS[key] = ts - _MILLIS[value[20:23]]
    return ts
