"""Hypothesis strategies for hostile input records: every field of every input schema.

A record starts as a valid document of its topic with values drawn across their whole
valid range (ids of 128 four-byte characters, amounts just under 10^15, times from 1900
to 2200 at every UTC offset, unknown currencies), so that many reach the core; then up
to a few mutations break it, field by field or as a whole:

* a field replaced by a value of the wrong type, a size at or beyond a limit, a number
  at a float or decimal extreme (1e308, -0.0, 1e-30, 2**64, NaN/Infinity literals), a
  time at the edge of the calendar or of an offset (year 1/9999, +14:00, -12:00, +24:00,
  leap second 60, hour 24, 29 February), a string of controls or bidi marks, a lone
  surrogate;
* a field dropped, duplicated with another value (the last one wins in orjson and in
  the standard library's json: both readers must agree), or an extra field holding a
  deeply nested array or a huge string;
* the document cut short, given an invalid UTF-8 byte, replaced by a non-object, padded
  past the payload limit, or sent as null;
* the message key null, of another customer, of invalid UTF-8, or huge.

Documents are written as text by ``dump`` (not a JSON library), so duplicate keys and
literals no serializer would produce (``NaN``, ``1E+400``, ``-0``) can be sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from schemas.events import (
    CHANNELS,
    CONTACT_CHANNELS,
    CONTACT_OUTCOMES,
    OFFER_OUTCOMES,
    PRODUCT_RISKS,
    PRODUCTS,
    SEGMENTS,
    TRANSACTION_TYPES,
)
from state.decisions import TIERS

__all__ = [
    "CUSTOMERS",
    "TOPICS",
    "Raw",
    "Record",
    "answers",
    "bursts",
    "dump",
    "overrides",
    "records",
]

TOPICS = (
    "transactions",
    "balances",
    "customer-profiles",
    "risk-assessments",
    "contacts",
    "offer-responses",
    "tier-overrides",
    "ticks",
)
#: A few customers, so a batch of records meets the same states again.
CUSTOMERS = ("C1", "C2", "C000042", "客户-7", "\u202eC9")


@dataclass(frozen=True, slots=True)
class Raw:
    """JSON text written verbatim (a literal no serializer would write)."""

    text: str


@dataclass(frozen=True, slots=True)
class Record:
    """One message as the worker would consume it."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    timestamp_ms: int  # the Kafka timestamp: producers may set any 64-bit value
    mutations: tuple[str, ...]


def _value_text(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return dump(value, ascii_only)
    return json.dumps(value, ensure_ascii=ascii_only)


def dump(pairs: list[tuple[str, Any]], ascii_only: bool = False) -> str:
    """A JSON object from (key, value) pairs, duplicates and Raw literals included."""
    items = (
        f"{json.dumps(k, ensure_ascii=ascii_only)}:{_value_text(v, ascii_only)}" for k, v in pairs
    )
    return "{" + ",".join(items) + "}"


# ------------------------------------------------------------------ hostile values

_CONTROLS = "".join(chr(c) for c in [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029, 0xFEFF])
_BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
_ODD_TEXT = [
    "", " ", "\x00", "C1\x00", "C1\n", "\u202eC1", "C\u200f1", "\ufeffC1", "Ｃ１", "\U0001f600",
    "𝟙𝟚𝟛", "\ud800", "a\udfffb", "null", "NaN", "true", "0", "-0", "1e3", "٣",
]  # fmt: skip

_NUMBERS: list[Any] = [
    0, -0.0, 1, -1, 1e308, -1e308, 5e-324, 1e-30, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1,
    2**64, -(2**63) - 1, 10**30, 10**400, 10**15, 10**15 - 1, 999999999999999.9,
    Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("-0"), Raw("1E+400"), Raw("1e-400"),
    Raw("0.1e1"), Raw("999999999999999.99999999"), Raw("1000000000000000.00000000"),
    Raw("0.000000001"), Raw("1" + "0" * 5000), Raw("1." + "0" * 5000 + "1"), Raw("01"),
    Raw("+1"), Raw(".5"), Raw("1."), Raw("0x10"),
]  # fmt: skip
_MONEY_TEXT = [
    "0", "0.00", "-0", "-0.00", "0.01", "0.00000001", "0.000000001", "999999999999999.99999999",
    "1000000000000000", "-999999999999999.99999999", "1e5", "1E+2", " 1", "1,000.00",
    "１２３", "NaN", "Infinity", "-", ".", "1.", ".5", "+5", "00.1", "1" * 300,
]  # fmt: skip
_TS_TEXT = [
    "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59-23:59", "1899-12-31T23:59:59.999Z",
    "1900-01-01T00:00:00+14:00", "1900-01-01T00:00:00Z", "2200-12-31T23:59:59.999Z",
    "2200-12-31T23:59:59-12:00", "2201-01-01T00:00:00Z", "2024-06-30T23:59:60Z",
    "2016-12-31T23:59:60+00:00", "2024-01-01T24:00:00Z", "2023-02-29T00:00:00Z",
    "2024-02-29T12:00:00+14:00", "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00-00:00",
    "2024-01-01T00:00:00+23:59", "2024-01-01T00:00:00+14:01", "2024-01-01t00:00:00z",
    "2024-01-01T00:00:00", "2024-01-01 00:00:00Z", "2024-01-01", "2024-13-01T00:00:00Z",
    "2024-01-01T00:00:00." + "9" * 60 + "Z", "2024-01-01T00:00:00." + "9" * 43 + "Z",
    "2024-01-01T00:00:00.1234567890Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z",
    "2026-03-29T02:30:00+02:00", "٢٠٢٤-01-01T00:00:00Z", "2024-01-01T00:00:00Z\n",
]  # fmt: skip
_DATE_TEXT = [
    "0001-01-01", "9999-12-31", "1899-12-31", "1900-01-01", "2200-12-31", "2201-01-01",
    "2023-02-29", "2024-02-29", "2000-02-29", "1900-02-29", "2024-00-10", "2024-1-1",
    "20240101", "2024-01-01T00:00:00Z", "",
]  # fmt: skip


def _sized_text(sizes: list[int]) -> st.SearchStrategy[str]:
    """Strings at and around the limits, of cheap or of 4-byte characters."""
    fill = st.sampled_from(["a", "é", "\U0001f600", "\x01", "\u202e", '"', "\\"])
    return st.builds(lambda n, c: c * n, st.sampled_from(sizes), fill)


_WRONG_TYPES: st.SearchStrategy[Any] = st.sampled_from(
    [None, True, False, [], {}, [1, 2], {"a": 1}, 0, 1.5, "x", [[[]]]]
)
HOSTILE: st.SearchStrategy[Any] = st.one_of(
    _WRONG_TYPES,
    st.sampled_from(_NUMBERS),
    st.sampled_from(_ODD_TEXT),
    st.sampled_from(_MONEY_TEXT),
    st.sampled_from(_TS_TEXT),
    st.sampled_from(_DATE_TEXT),
    _sized_text([1, 35, 63, 64, 65, 127, 128, 129, 512, 70_000]),
    st.text(alphabet=_CONTROLS + _BIDI + "aZ9-_:", max_size=40),
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: Raw(str(d))),
)


# ------------------------------------------------------------------ valid values

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RECENT = (1767225600000, 1798761600000)  # 2026: most records, so states meet again


def _rfc3339(ms: int, offset_min: int, digits: int, lower: bool) -> str:
    """Epoch ms as RFC 3339 at ``offset_min`` (the local time written out)."""
    local = _EPOCH.replace(tzinfo=None) + timedelta(milliseconds=ms, minutes=offset_min)
    return _text(local, ms % 1000, offset_min, digits, lower)


def _text(local: datetime, millis: int, offset_min: int, digits: int, lower: bool) -> str:
    """A local time and its offset as RFC 3339 (any year 1..9999: the UTC instant may
    fall in year 0 or 10000, which is the point)."""
    frac = f"{millis:03d}".ljust(digits, "0")[:digits] if digits else ""
    sign = "+" if offset_min >= 0 else "-"
    hours, minutes = divmod(abs(offset_min), 60)
    off = "Z" if offset_min == 0 else f"{sign}{hours:02d}:{minutes:02d}"
    text = (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}T"
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
        + ("." + frac if frac else "")
        + off
    )
    return text.lower() if lower else text  # RFC 3339 allows "t" and "z"


_LOCAL_EDGES = [
    datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999000), datetime(1900, 1, 1),
    datetime(1899, 12, 31, 23, 59, 59, 999000), datetime(2200, 12, 31, 23, 59, 59, 999000),
    datetime(2201, 1, 1), datetime(1970, 1, 1), datetime(2000, 2, 29, 12),
    datetime(2026, 3, 29, 2, 30), datetime(1000, 1, 1), datetime(9000, 12, 31, 23, 59),
]  # fmt: skip


def _valid_ts() -> st.SearchStrategy[str]:
    """Well-formed times: mostly in 2026 (so a batch's records meet), else anywhere in
    1900..2200, anywhere in the calendar, or at its edges; at every kind of offset."""
    offset = st.one_of(
        st.just(0), st.sampled_from([840, -720, 480, 330, 345, -570, 59, -1439, 1439])
    )
    digits = st.sampled_from([0, 3, 3, 1, 6, 9, 20])
    recent = st.builds(_rfc3339, st.integers(*_RECENT), offset, digits, st.booleans())
    local = st.one_of(
        st.datetimes(datetime(1900, 1, 1), datetime(2200, 12, 31, 23, 59, 59)),
        st.datetimes(),  # the whole calendar, years 1..9999
        st.sampled_from(_LOCAL_EDGES),
    )
    anywhere = st.builds(
        lambda t, o, d, lo: _text(t, t.microsecond // 1000, o, d, lo),
        local,
        offset,
        digits,
        st.booleans(),
    )
    return st.one_of(recent, recent, recent, anywhere)


def _valid_money(signed: bool, zero: bool) -> st.SearchStrategy[Any]:
    low = 0 if zero else 1
    as_text = st.one_of(
        st.integers(low, 10**8).map(lambda c: f"{c // 100}.{c % 100:02d}"),
        st.sampled_from(["999999999999999.99999999", "0.00000001", "123456789012345.6789"]),
        st.integers(low, 10**15 - 1).map(str),
    )
    number = st.one_of(
        st.integers(low, 10**15 - 1),
        as_text.map(Raw),
        st.sampled_from([Raw("0.1"), Raw("2.675"), Raw("100.10"), Raw("1.5e2")]),
    )
    value = st.one_of(as_text, number)
    if signed:
        value = st.one_of(value, as_text.map(lambda s: "-" + s if s != "0" else s))
    return value


_SIMPLE_ID = st.text(alphabet="ABCDEFGHJKxyz0123456789-_.:", min_size=1, max_size=24)


def _ident(pool: tuple[str, ...] | None = None) -> st.SearchStrategy[str]:
    """Ids: mostly plain ones, else any text up to the limits (4-byte characters,
    bidi marks, quotes and backslashes that JSON must escape)."""
    free = st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30),
        st.integers(1, 128).map(lambda n: "\U0001f600" * n),
        st.integers(1, 128).map(lambda n: "é" * n),
        st.sampled_from(["\u202e" * 128, '"' * 128, "\\" * 128, "a" * 128]),
    )
    if pool:
        return st.one_of(st.sampled_from(pool), st.sampled_from(pool), _SIMPLE_ID, free)
    return st.one_of(_SIMPLE_ID, _SIMPLE_ID, free)


_EXP = [Raw("150.0"), 0, Raw("1e-30"), Raw("0.0")]


def _base(topic: str, draw: Any) -> list[tuple[str, Any]]:
    """A valid document of ``topic`` (as ordered pairs), values across their range."""
    eid = draw(_ident())
    cid = draw(_ident(CUSTOMERS))
    ts = draw(_valid_ts())
    accounts = st.sampled_from(["A1", "A2", "LOAN", "W1"]) | _ident()
    currency = st.sampled_from(["CNY", "CNY", "USD", "GBP", "JPY", "XXX", "EUR"])
    if topic == "transactions":
        doc = [
            ("event_id", eid), ("customer_id", cid), ("account_id", draw(accounts)),
            ("ts", ts), ("type", draw(st.sampled_from(TRANSACTION_TYPES))),
            ("amount", draw(_valid_money(False, False))), ("currency", draw(currency)),
            ("channel", draw(st.sampled_from(CHANNELS))),
        ]  # fmt: skip
        if draw(st.booleans()):
            doc.append(("balance_after", draw(_valid_money(True, True) | st.none())))
        if draw(st.booleans()):
            doc.append(("product_risk", draw(st.sampled_from([*PRODUCT_RISKS, None]))))
        return doc
    if topic == "balances":
        return [
            ("event_id", eid), ("customer_id", cid), ("account_id", draw(accounts)),
            ("ts", ts), ("product", draw(st.sampled_from(PRODUCTS))),
            ("balance", draw(_valid_money(False, True))), ("currency", draw(currency)),
        ]  # fmt: skip
    if topic == "customer-profiles":
        doc = [
            ("event_id", eid), ("customer_id", cid), ("ts", ts),
            ("segment", draw(st.sampled_from(SEGMENTS))),
            ("marketing_consent", draw(st.booleans())),
        ]  # fmt: skip
        if draw(st.booleans()):
            birth = st.one_of(
                st.dates(date(1900, 1, 1), date(2200, 12, 31)),
                st.dates(),  # years 1..9999
                st.sampled_from([date(1, 1, 1), date(9999, 12, 31), date(2000, 2, 29)]),
            ).map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}")
            doc.append(("birth_date", draw(birth | st.none())))
        if draw(st.booleans()):
            doc.append(("service_contact_opt_out", draw(st.booleans())))
        return doc
    if topic == "risk-assessments":
        return [
            ("event_id", eid), ("customer_id", cid), ("ts", ts),
            ("score", draw(st.integers(0, 100) | st.sampled_from([Raw("70.0"), Raw("1e2")]))),
            ("investment_experience_years", draw(st.floats(0, 150) | st.sampled_from(_EXP))),
        ]  # fmt: skip
    if topic == "contacts":
        return [
            ("event_id", eid), ("customer_id", cid), ("ts", ts),
            ("channel", draw(st.sampled_from(CONTACT_CHANNELS))),
            ("outcome", draw(st.sampled_from(CONTACT_OUTCOMES))),
        ]  # fmt: skip
    if topic == "offer-responses":
        hexid = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
        return [
            ("event_id", eid), ("customer_id", cid), ("ts", ts),
            ("offer_event_id", draw(hexid | st.sampled_from(["0" * 32, "f" * 32]))),
            ("outcome", draw(st.sampled_from(OFFER_OUTCOMES))),
            ("channel", draw(st.none() | st.from_regex(r"[a-z][a-z0-9_]{0,31}", fullmatch=True))),
            ("product_id", draw(st.none() | _ident())),
        ]  # fmt: skip
    if topic == "tier-overrides":
        doc = [
            ("event_id", eid), ("customer_id", cid), ("ts", ts),
            ("tier", draw(st.sampled_from([*TIERS, None]))),
            ("set_by", draw(_ident(("rm-7", "rm-000", "客户经理-12")))),
            ("reason", draw(st.text(max_size=30) | st.sampled_from(["", "x" * 64, "x" * 65]))),
        ]  # fmt: skip
        if draw(st.integers(0, 3)):  # until: mostly set, a time near ts or anywhere
            doc.append(("until", draw(_valid_ts() | _after(ts) | st.none())))
        return doc
    return []  # ticks: built by the caller (their id restates the time)


def _after(ts: str) -> st.SearchStrategy[str]:
    """A time shortly after (or exactly at) ``ts``: overrides that expire within a
    batch's ticks, and the boundary ``until == ts`` the decoder refuses."""
    try:
        start = datetime.fromisoformat(ts.upper())
    except ValueError:
        return st.just(ts)
    if start.tzinfo is None:
        return st.just(ts)

    def later(ms: int) -> str:
        try:
            return (start + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
        except OverflowError:  # the end of the calendar: until == ts
            return ts

    return st.integers(0, 40 * 86_400_000).map(later)


# ------------------------------------------------------------------ mutations

_FIELD_MUTATIONS = ("replace", "replace", "replace", "drop", "duplicate", "null")
_DOC_MUTATIONS = (
    "cut", "bad_utf8", "not_object", "pad_over_limit", "deep_extra", "huge_extra",
    "none", "empty", "bom", "trailing_garbage", "nested_nan",
)  # fmt: skip
_KEY_MUTATIONS = ("none", "other", "bad_utf8", "huge", "empty", "controls")


def _mutate_fields(
    doc: list[tuple[str, Any]], draw: Any, notes: list[str]
) -> list[tuple[str, Any]]:
    names = [k for k, _ in doc] + [
        "balance_after", "product_risk", "birth_date", "until", "service_contact_opt_out", "extra"
    ]  # fmt: skip
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(names))
        how = draw(st.sampled_from(_FIELD_MUTATIONS))
        notes.append(f"{how}:{name}")
        if how == "drop":
            doc = [(k, v) for k, v in doc if k != name]
        elif how == "null":
            doc = [(k, None if k == name else v) for k, v in doc]
        elif how == "duplicate":
            doc = [*doc, (name, draw(HOSTILE))]
        else:
            value = draw(HOSTILE)
            doc = [(k, value if k == name else v) for k, v in doc]
            if name not in [k for k, _ in doc]:
                doc.append((name, value))
    return doc


def _payload(doc: list[tuple[str, Any]], draw: Any, notes: list[str]) -> bytes | None:
    text = dump(doc, ascii_only=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8
    if draw(st.integers(0, 4)) != 0:
        return raw
    how = draw(st.sampled_from(_DOC_MUTATIONS))
    notes.append(f"doc:{how}")
    if how == "cut":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if how == "bad_utf8":
        at = draw(st.integers(0, len(raw)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]))
        return raw[:at] + bad + raw[at:]
    if how == "not_object":
        return draw(st.sampled_from([b"[]", b"null", b'"C1"', b"1", b"[" + raw + b"]", b"true"]))
    if how == "pad_over_limit":
        size = draw(st.sampled_from([65_000, 70_000, 200_000]))
        return raw[:-1] + b',"pad":"' + b"x" * size + b'"}'
    if how == "deep_extra":
        depth = draw(st.sampled_from([64, 512, 1023, 1024, 1025, 5000, 20_000]))
        return raw[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
    if how == "huge_extra":
        return raw[:-1] + b',"note":"' + "\U0001f600".encode() * 15_000 + b'"}'
    if how == "none":
        return None
    if how == "empty":
        return b""
    if how == "bom":
        return b"\xef\xbb\xbf" + raw
    if how == "trailing_garbage":
        return raw + draw(st.sampled_from([b"x", b"}", b" ", b"\x00", b"{}"]))
    return raw[:-1] + b',"n":{"x":[NaN,Infinity]}}'  # nested_nan


def _key(doc: list[tuple[str, Any]], topic: str, draw: Any, notes: list[str]) -> bytes | None:
    cid = next((v for k, v in reversed(doc) if k == "customer_id"), None)
    good = cid.encode("utf-8", "surrogatepass") if isinstance(cid, str) else b"C1"
    if topic == "ticks" or draw(st.integers(0, 5)) != 0:
        return None if topic == "ticks" else good
    how = draw(st.sampled_from(_KEY_MUTATIONS))
    notes.append(f"key:{how}")
    if how == "none":
        return None
    if how == "other":
        return draw(st.sampled_from(CUSTOMERS)).encode()
    if how == "bad_utf8":
        return b"\xff\xfe" + good
    if how == "huge":
        return draw(st.sampled_from([b"K" * 513, b"\x01" * 170_000, good * 3000]))
    if how == "empty":
        return b""
    return b"\x00\x1f" + good


def _tick(draw: Any, notes: list[str]) -> list[tuple[str, Any]]:
    partition = draw(st.integers(0, 7) | st.sampled_from([999_999_999, 10**9, -1]))
    text = draw(_valid_ts())
    try:
        ms = (datetime.fromisoformat(text.upper()) - _EPOCH) // timedelta(milliseconds=1)
    except ValueError:
        ms = 0
    eid = f"tick-{partition}-{ms}" if draw(st.integers(0, 5)) else draw(_ident())
    return [("event_id", eid), ("partition", partition), ("ts", text)]


@st.composite
def records(draw: Any, topics: tuple[str, ...] = TOPICS) -> Record:
    """One hostile (or, about a fifth of the time, valid) record of any input topic."""
    topic = draw(st.sampled_from(topics))
    notes: list[str] = []
    doc = _tick(draw, notes) if topic == "ticks" else _base(topic, draw)
    doc = _mutate_fields(doc, draw, notes)
    key = _key(doc, topic, draw, notes)
    value = _payload(doc, draw, notes)
    return Record(
        topic=topic,
        key=key,
        value=value,
        partition=draw(st.integers(0, 7)),
        offset=draw(st.integers(0, 2**63 - 1)),
        timestamp_ms=draw(st.integers(-(2**63), 2**63 - 1) | st.integers(*_RECENT)),
        mutations=tuple(notes),
    )


_BIG = "999999999999999.99999999"


@st.composite
def bursts(draw: Any) -> list[Record]:
    """Many valid records of one customer at the largest values: balances of distinct
    accounts in the dearest currency, or deposits, or overdrafts (balance_after
    negative): what grows a state's accounts and its 64-bit sums."""
    n = draw(st.integers(10, 40))
    kind = draw(st.sampled_from(["balances", "deposits", "overdrafts"]))
    day = draw(st.integers(0, 300))
    out = []
    for i in range(n):
        ts = _rfc3339(_RECENT[0] + (day + i) * 86_400_000, 0, 3, False)
        common = [("event_id", f"burst-{i}"), ("customer_id", "C1"), ("ts", ts)]
        if kind == "balances":
            doc = [*common, ("account_id", f"B{i}"), ("product", "deposit"),
                   ("balance", _BIG), ("currency", "GBP")]  # fmt: skip
            topic = "balances"
        else:
            doc = [*common, ("account_id", f"B{i}" if kind == "overdrafts" else "B"),
                   ("type", "deposit" if kind == "deposits" else "withdrawal"),
                   ("amount", _BIG), ("currency", "GBP"), ("channel", "branch")]  # fmt: skip
            if kind == "overdrafts":
                doc.append(("balance_after", "-" + _BIG))
            topic = "transactions"
        out.append(Record(topic, b"C1", dump(doc).encode(), 0, i, 0, (f"burst:{kind}",)))
    return out


@st.composite
def answers(draw: Any) -> list[Record]:
    """One customer who gets offers and answers them (valid records, event-time order
    with jitter): a consenting SME profile, balances that move it across the tier
    floors (each entry an offer), answers naming a placeholder id (the harness makes
    it name an offer really made: tests/fuzz/harness.py) with every outcome, and later
    balances whose offers meet the declines' cool-down."""
    cid = draw(st.sampled_from(["C2", "C000042"]))
    day = draw(st.integers(0, 300))

    def at(d: float) -> str:
        return _rfc3339(_RECENT[0] + int((day + d) * 86_400_000), 480, 3, False)

    out = [
        Record("customer-profiles", cid.encode(), dump([
            ("event_id", "ans-p"), ("customer_id", cid), ("ts", at(0)), ("segment", "sme"),
            ("marketing_consent", True)]).encode(), 0, 0, 0, ("answers",)),
    ]  # fmt: skip
    levels = ["600000.00", "1200000.00", "300000.00", "7000000.00", "700000.00", "2000000.00"]
    for i in range(draw(st.integers(4, 16))):
        d = i * draw(st.sampled_from([0.5, 3, 20, 40]))
        if i % 2 == 0:
            doc = [("event_id", f"ans-b{i}"), ("customer_id", cid), ("ts", at(d)),
                   ("account_id", "A1"), ("product", "deposit"),
                   ("balance", draw(st.sampled_from(levels))), ("currency", "CNY")]  # fmt: skip
            topic = "balances"
        else:
            doc = [("event_id", f"ans-r{i}"), ("customer_id", cid),
                   ("ts", at(d + draw(st.sampled_from([-1, 0.1, 2, 30])))),
                   ("offer_event_id", draw(st.sampled_from(["0" * 32, "f" * 32]))),
                   ("outcome", draw(st.sampled_from(OFFER_OUTCOMES)))]  # fmt: skip
            topic = "offer-responses"
        out.append(Record(topic, cid.encode(), dump(doc).encode(), 0, i + 1, 0, ("answers",)))
    return out


@st.composite
def overrides(draw: Any) -> list[Record]:
    """A relationship manager at work on one customer: valid tier overrides (set with
    and without ``until``, cleared, out of order), each now and then followed by a
    tick past its ``until``, so every batch of this kind sets, clears and expires
    overrides whatever the rules' limits (hostile override records mostly die in the
    decoder, tight rules even more)."""
    cid = draw(st.sampled_from(CUSTOMERS[:3]))
    start = _RECENT[0] + draw(st.integers(0, 300)) * 86_400_000
    out = []
    for i in range(draw(st.integers(2, 8))):
        ts = start + draw(st.integers(-5, 30)) * 3_600_000 + i * 86_400_000
        tier = draw(st.sampled_from([*TIERS, None]))
        doc = [("event_id", f"ovr-{i}"), ("customer_id", cid), ("ts", _rfc3339(ts, 480, 3, False)),
               ("tier", tier), ("set_by", "rm-7"), ("reason", "fuzz")]  # fmt: skip
        until = ts + draw(st.integers(1, 5 * 86_400_000))
        if tier is not None and draw(st.integers(0, 3)):
            doc.append(("until", _rfc3339(until, 0, 3, False)))
        out.append(Record("tier-overrides", cid.encode(), dump(doc).encode(), 0, i, 0, ("ovr",)))
        if draw(st.booleans()):
            tick = [("event_id", f"tick-0-{until}"), ("partition", 0),
                    ("ts", _rfc3339(until, 0, 3, False))]  # fmt: skip
            out.append(Record("ticks", None, dump(tick).encode(), 0, 100 + i, 0, ("ovr:tick",)))
    return out
