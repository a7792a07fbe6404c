"""What comes out of a successful decode: exact money, correct instants, the optional
fields, and the agreement between the JSON Schemas and the decoder's own checks."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

import fastjsonschema
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from schemas.decoder import DEFAULT_MAX_YEAR, DEFAULT_MIN_YEAR, DecodeError, Decoder, load_schema
from schemas.events import BalanceSnapshot, CustomerProfile, RiskAssessment, Transaction
from schemas.values import money, timestamp
from tests.schemas.conftest import DROP, VALID, make_payload

T = "transactions"
_YEAR_START_MS = {
    y: int(datetime(y, 1, 1, tzinfo=UTC).timestamp() * 1000)
    for y in (DEFAULT_MIN_YEAR, DEFAULT_MAX_YEAR + 1)
}
DECODER = Decoder()  # for property tests: compiling the schemas per example is slow


def _tx(decoder: Decoder, raw: bytes) -> Transaction:
    event = decoder.decode(T, raw)
    assert isinstance(event, Transaction), event
    return event


def _with_amount_literal(literal: str, topic: str = T, key: str = "amount") -> bytes:
    """A payload whose money field is written exactly as ``literal`` (a JSON number)."""
    doc = dict(VALID[topic])
    doc[key] = "@@"
    return json.dumps(doc, separators=(",", ":")).replace('"@@"', literal).encode()


# --- money --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ('"0.1"', "0.1"),
        ("0.1", "0.1"),
        ('"12345678901234.56"', "12345678901234.56"),
        ("12345678901234.56", "12345678901234.56"),  # 16 digits: not exact as a float
        ("999999999999999.99999999", "999999999999999.99999999"),
        ("125.50", "125.50"),
        ("1E2", "1E+2"),
        ("2.5e-3", "0.0025"),
        ("7", "7"),
        ("0.00000001", "0.00000001"),
    ],
)
def test_money_is_exact_for_strings_and_numbers(
    decoder: Decoder, literal: str, expected: str
) -> None:
    amount = _tx(decoder, _with_amount_literal(literal)).amount
    assert type(amount) is Decimal
    # Not merely equal: the same digits and exponent, no float residue.
    assert amount.as_tuple() == Decimal(expected).as_tuple()


def test_exact_literal_is_found_when_the_fast_path_cannot_be_trusted(decoder: Decoder) -> None:
    # A backslash anywhere, or the key also nested elsewhere, sends the decoder to the
    # exact slow path; the value must be the same.
    escaped = _with_amount_literal("12345678901234.56").replace(
        b'"event_id":"tx-1"', b'"event_id":"tx-\\u00e91"'
    )
    assert b"\\" in escaped
    assert _tx(decoder, escaped).amount == Decimal("12345678901234.56")
    nested = _with_amount_literal("0.3").replace(b"{", b'{"meta":{"amount":0.1},', 1)
    assert _tx(decoder, nested).amount == Decimal("0.3")
    # An escaped key spelling of "amount" at the top level is still the amount.
    spelled = _with_amount_literal("0.7").replace(b'"amount"', b'"\\u0061mount"')
    assert _tx(decoder, spelled).amount == Decimal("0.7")


def test_sums_of_decoded_amounts_are_exact(decoder: Decoder) -> None:
    total = sum((_tx(decoder, _with_amount_literal("0.1")).amount for _ in range(10)), Decimal(0))
    assert total == Decimal("1.0")  # a float sum would give 0.9999999999999999


def test_balance_after_is_signed_and_optional(decoder: Decoder) -> None:
    assert _tx(decoder, make_payload(T, balance_after="-42.10")).balance_after == Decimal("-42.10")
    assert _tx(decoder, make_payload(T, balance_after=-0.5)).balance_after == Decimal("-0.5")
    assert _tx(decoder, make_payload(T, balance_after=None)).balance_after is None
    assert _tx(decoder, make_payload(T)).balance_after is None


def test_balance_zero_is_allowed(decoder: Decoder) -> None:
    event = decoder.decode("balances", make_payload("balances", balance=0))
    assert isinstance(event, BalanceSnapshot)
    assert event.balance == Decimal(0)


@pytest.mark.parametrize(("text", "risk"), [("R1", 1), ("R3", 3), ("R5", 5), (None, None)])
def test_product_risk_maps_to_an_int(decoder: Decoder, text: str | None, risk: int | None) -> None:
    assert _tx(decoder, make_payload(T, product_risk=text)).product_risk == risk


money_decimals = st.decimals(
    min_value=Decimal("0.00000001"),
    max_value=Decimal("999999999999999.99999999"),
    places=8,
    allow_nan=False,
    allow_infinity=False,
)


@settings(max_examples=300, deadline=None)
@given(value=money_decimals, places=st.integers(min_value=0, max_value=8))
def test_any_amount_within_limits_round_trips_exactly(value: Decimal, places: int) -> None:
    value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    assume(value > 0)
    decoder = DECODER
    text = format(value, "f")  # plain notation: strings must not use exponents
    for literal in (text, json.dumps(text)):
        amount = _tx(decoder, _with_amount_literal(literal)).amount
        assert amount.as_tuple() == value.as_tuple()


# --- the schemas and the Python checks agree ----------------------------------------

money_text = st.one_of(
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,16})(\.[0-9]{0,10})?\Z"),
    st.text(alphabet="-0123456789.eE+ ", max_size=12),
)


@functools.cache
def _pattern_validator(topic: str, key: str) -> Any:
    pattern = load_schema(topic)["properties"][key]["pattern"]
    return fastjsonschema.compile({"type": "string", "pattern": pattern})


@pytest.mark.parametrize(
    ("topic", "key", "sign"),
    [
        ("transactions", "amount", "positive"),
        ("balances", "balance", "non-negative"),
        ("transactions", "balance_after", "signed"),
    ],
)
@settings(max_examples=300, deadline=None)
@given(text=money_text)
def test_money_string_pattern_in_schema_agrees_with_decoder(
    topic: str, key: str, sign: str, text: str
) -> None:
    """The decoder trusts the schema's pattern on its fast path, and explains failures
    with its own checks; both are only sound if they accept exactly the same strings."""
    validate = _pattern_validator(topic, key)
    try:
        validate(text)
        schema_ok = True
    except fastjsonschema.JsonSchemaValueException:
        schema_ok = False
    python_ok = not isinstance(money(text, key, b"", sign), DecodeError)
    assert schema_ok == python_ok, (text, schema_ok, python_ok)


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.from_regex(
            r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
            r"([Zz]|[+-][0-9]{2}:[0-9]{2})?\Z"
        ),
        st.text(max_size=30),
    )
)
@example(text="0001-01-01T00:00:00+01:00")  # issue 18: the core once crashed on year 0
@example(text="2201-01-01T00:00:00Z")
def test_ts_decoding_agrees_between_fast_and_explaining_paths(text: str) -> None:
    result = DECODER.decode("risk-assessments", make_payload("risk-assessments", ts=text))
    checked = timestamp(text)
    if isinstance(checked, DecodeError):
        assert result == checked
    elif not _YEAR_START_MS[DEFAULT_MIN_YEAR] <= checked < _YEAR_START_MS[DEFAULT_MAX_YEAR + 1]:
        # a well-formed time outside the default limits.min_year..max_year (UTC)
        assert isinstance(result, DecodeError), result
        assert result.limit in ("limits.min_year", "limits.max_year"), result
    else:
        assert isinstance(result, RiskAssessment)
        assert result.ts == checked


@settings(max_examples=400, deadline=None)
@given(
    literal=st.from_regex(r"\A-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,11})?([eE][+-]?[0-9]{1,2})?\Z"),
    key=st.sampled_from(["amount", "balance_after"]),
)
def test_json_number_money_is_accepted_exactly_when_its_exact_value_is_valid(
    literal: str, key: str
) -> None:
    """The float fast path must never decide differently from exact arithmetic."""
    exact = Decimal(literal)
    exponent = exact.as_tuple().exponent
    assert isinstance(exponent, int)
    valid = abs(exact) < 10**15 and exponent >= -8
    if key == "amount":
        valid = valid and exact > 0
    doc = dict(VALID[T])
    doc[key] = "@@"
    raw = json.dumps(doc, separators=(",", ":")).replace('"@@"', literal).encode()
    result = DECODER.decode(T, raw)
    if valid:
        assert isinstance(result, Transaction), (literal, result)
        decoded = getattr(result, key)
        assert decoded == exact  # "-0" may come back as 0: equal, and sign-less in JSON
        assert decoded.as_tuple().exponent == exponent
    else:
        assert isinstance(result, DecodeError), (literal, result)
        assert result.field == f"$.{key}"


# --- timestamps ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "epoch_ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2024-05-01T09:15:02.120Z", 1714554902120),
        ("2024-05-01T11:15:02.120+02:00", 1714554902120),
        ("2024-05-01T03:45:02.120-05:30", 1714554902120),
        ("2024-05-01t09:15:02.120z", 1714554902120),  # RFC 3339 allows lower case
        ("2024-05-01T09:15:02.1209999Z", 1714554902120),  # sub-ms digits dropped
        ("2024-05-01T09:15:02Z", 1714554902000),
        ("1969-12-31T23:59:59.9995Z", -1),  # floored, not rounded toward zero
        ("2024-02-29T00:00:00Z", 1709164800000),  # leap day
    ],
)
def test_ts_becomes_utc_epoch_ms(decoder: Decoder, text: str, epoch_ms: int) -> None:
    assert _tx(decoder, make_payload(T, ts=text)).ts == epoch_ms


# --- the other event types ----------------------------------------------------------


def test_profile_optional_birth_date(decoder: Decoder) -> None:
    with_date = decoder.decode(
        "customer-profiles", make_payload("customer-profiles", birth_date="2000-02-29")
    )
    assert isinstance(with_date, CustomerProfile)
    assert with_date.birth_date == "2000-02-29"
    for raw in (
        make_payload("customer-profiles", birth_date=None),
        make_payload("customer-profiles", birth_date=DROP),
    ):
        event = decoder.decode("customer-profiles", raw)
        assert isinstance(event, CustomerProfile)
        assert event.birth_date is None
        assert event.marketing_consent is True


@pytest.mark.parametrize(
    ("changes", "score", "years"),
    [
        ({}, 55, 3.0),
        ({"score": 70.0}, 70, 3.0),
        ({"score": 0, "investment_experience_years": 0.5}, 0, 0.5),
        ({"score": 100}, 100, 3.0),
    ],
)
def test_assessment_score_is_int_and_years_float(
    decoder: Decoder, changes: dict[str, Any], score: int, years: float
) -> None:
    event = decoder.decode("risk-assessments", make_payload("risk-assessments", **changes))
    assert isinstance(event, RiskAssessment)
    assert type(event.score) is int and event.score == score
    assert type(event.investment_experience_years) is float
    assert event.investment_experience_years == years


def test_decode_error_describe() -> None:
    assert DecodeError("$.amount", "must be > 0").describe() == "$.amount: must be > 0"


def test_pathologically_nested_payload_with_escapes_fails_cleanly(decoder: Decoder) -> None:
    """The exact slow path re-parses with the stdlib, whose nesting limit is lower than
    orjson's; that must become a field error, not an exception in the worker."""
    nesting = b"[" * 995 + b"]" * 995
    doc = dict(VALID[T], event_id="tx-\u00e9")
    as_number = _with_amount_literal("1.5").replace(b"}", b',"deep":' + nesting + b"}")
    as_number = as_number.replace(b'"tx-1"', json.dumps(doc["event_id"]).encode())
    assert b"\\" in as_number
    result = decoder.decode(T, as_number)
    assert result == DecodeError(
        "$.amount", "could not read the exact number; send a decimal string"
    )
    as_string = as_number.replace(b":1.5,", b':"1.5",')
    assert _tx(decoder, as_string).amount == Decimal("1.5")


def test_schema_lookup_refuses_unknown_topics() -> None:
    assert load_schema("offers")["title"] == "Offer"
    with pytest.raises(ValueError, match="unknown topic"):
        load_schema("dev.offers")
