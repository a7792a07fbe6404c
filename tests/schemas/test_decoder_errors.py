"""Bad inputs: each one must come back as a DecodeError naming the right field and
saying why. The table is the contract producers can test their payloads against."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.decoder import DecodeError, Decoder
from tests.schemas.conftest import DROP, make_payload

T = "transactions"
B = "balances"
P = "customer-profiles"
R = "risk-assessments"
NOW_MS = 1714554902120  # 2024-05-01T09:15:02.120Z, the fixtures' "now"

REQUIRED = {
    T: ("event_id", "customer_id", "account_id", "ts", "type", "amount", "currency", "channel"),
    B: ("event_id", "customer_id", "account_id", "ts", "product", "balance", "currency"),
    P: ("event_id", "customer_id", "ts", "segment", "marketing_consent"),
    R: ("event_id", "customer_id", "ts", "score", "investment_experience_years"),
}

CASES: list[tuple[str, str, bytes | None, str, str]] = [
    # (id, topic, payload, expected field, expected reason fragment)
    ("none", T, None, "$", "empty payload"),
    ("empty", T, b"", "$", "empty payload"),
    ("truncated-json", T, b'{"event_id": "tx-1", ', "$", "not valid JSON"),
    ("not-json-at-all", T, b"hello", "$", "not valid JSON"),
    ("nan-literal", T, b'{"amount": NaN}', "$", "not valid JSON"),
    ("invalid-utf8", T, b'{"event_id": "\xff\xfe"}', "$", "invalid UTF-8 at byte 14"),
    ("array", T, b'[{"event_id": "tx-1"}]', "$", "must be a JSON object, got array"),
    ("json-string", T, b'"tx-1"', "$", "must be a JSON object, got string"),
    ("json-null", T, b"null", "$", "must be a JSON object, got null"),
    *(
        (
            f"missing-{topic}-{name}",
            topic,
            make_payload(topic, **{name: DROP}),
            f"$.{name}",
            "required field missing",
        )
        for topic, names in REQUIRED.items()
        for name in names
    ),
    # ids
    ("empty-event-id", T, make_payload(T, event_id=""), "$.event_id", "must not be empty"),
    (
        "nul-in-customer-id",
        T,
        make_payload(T, customer_id="C\u00001"),
        "$.customer_id",
        "control characters",
    ),
    (
        "numeric-customer-id",
        T,
        make_payload(T, customer_id=42),
        "$.customer_id",
        "must be a string, got number",
    ),
    (
        "long-account-id",
        B,
        make_payload(B, account_id="A" * 129),
        "$.account_id",
        "at most 128 characters",
    ),
    # money
    (
        "amount-array",
        T,
        make_payload(T, amount=[1]),
        "$.amount",
        "must be a number or a decimal string, got array",
    ),
    ("amount-bool", T, make_payload(T, amount=True), "$.amount", "got boolean"),
    ("amount-null", T, make_payload(T, amount=None), "$.amount", "got null"),
    ("amount-negative", T, make_payload(T, amount=-5), "$.amount", "must be > 0"),
    ("amount-negative-string", T, make_payload(T, amount="-5.00"), "$.amount", "must be > 0"),
    ("amount-zero", T, make_payload(T, amount=0), "$.amount", "must be > 0"),
    ("amount-zero-float", T, make_payload(T, amount=0.0), "$.amount", "must be > 0"),
    ("amount-zero-string", T, make_payload(T, amount="0.00"), "$.amount", "must be > 0"),
    ("amount-nan-string", T, make_payload(T, amount="NaN"), "$.amount", "not a decimal number"),
    (
        "amount-inf-string",
        T,
        make_payload(T, amount="Infinity"),
        "$.amount",
        "not a decimal number",
    ),
    (
        "amount-exponent-string",
        T,
        make_payload(T, amount="1e3"),
        "$.amount",
        "not a decimal number",
    ),
    (
        "amount-thousands-sep",
        T,
        make_payload(T, amount="1,000.00"),
        "$.amount",
        "not a decimal number",
    ),
    ("amount-padded", T, make_payload(T, amount=" 12.00"), "$.amount", "not a decimal number"),
    (
        "amount-9-decimals",
        T,
        make_payload(T, amount="1.123456789"),
        "$.amount",
        "more than 8 decimal places",
    ),
    (
        "amount-9-decimals-number",
        T,
        b'{"event_id":"tx-1","customer_id":"C1","account_id":"A1",'
        b'"ts":"2024-05-01T09:15:02Z","type":"fee","amount":1.123456789,"currency":"EUR",'
        b'"channel":"online"}',
        "$.amount",
        "more than 8 decimal places",
    ),
    (
        "amount-too-precise-for-float",
        T,
        b'{"event_id":"tx-1","customer_id":"C1",'
        b'"account_id":"A1","ts":"2024-05-01T09:15:02Z","type":"fee",'
        b'"amount":0.10000000000000001,"currency":"EUR","channel":"online"}',
        "$.amount",
        "more than 8 decimal places",
    ),
    (
        "amount-underflows-float",
        T,
        b'{"event_id":"tx-1","customer_id":"C1","account_id":"A1",'
        b'"ts":"2024-05-01T09:15:02Z","type":"fee","amount":1e-400,"currency":"EUR",'
        b'"channel":"online"}',
        "$.amount",
        "more than 8 decimal places",
    ),
    (
        "amount-too-large",
        T,
        make_payload(T, amount="1000000000000000"),
        "$.amount",
        "magnitude must be < 10^15",
    ),
    ("amount-huge-int", T, make_payload(T, amount=2**70), "$.amount", "magnitude must be < 10^15"),
    ("balance-negative", B, make_payload(B, balance="-0.01"), "$.balance", "must be >= 0"),
    (
        "balance-after-garbage",
        T,
        make_payload(T, balance_after="abc"),
        "$.balance_after",
        "not a decimal number",
    ),
    (
        "balance-after-object",
        T,
        make_payload(T, balance_after={"v": 1}),
        "$.balance_after",
        "got object",
    ),
    # enums
    (
        "unknown-type",
        T,
        make_payload(T, type="XYZ"),
        "$.type",
        "unknown value 'XYZ' (allowed: deposit, withdrawal",
    ),
    ("type-wrong-case", T, make_payload(T, type="Deposit"), "$.type", "unknown value 'Deposit'"),
    ("unknown-channel", T, make_payload(T, channel="fax"), "$.channel", "unknown value 'fax'"),
    (
        "unknown-product",
        B,
        make_payload(B, product="crypto"),
        "$.product",
        "unknown value 'crypto'",
    ),
    (
        "unknown-segment",
        P,
        make_payload(P, segment="corporate"),
        "$.segment",
        "unknown value 'corporate' (allowed: retail, sme)",
    ),
    (
        "product-risk-r6",
        T,
        make_payload(T, product_risk="R6"),
        "$.product_risk",
        "unknown value 'R6'",
    ),
    (
        "product-risk-number",
        T,
        make_payload(T, product_risk=3),
        "$.product_risk",
        "must be a string or null, got number",
    ),
    # currency
    ("lowercase-currency", T, make_payload(T, currency="usd"), "$.currency", "ISO 4217"),
    ("long-currency", B, make_payload(B, currency="EURO"), "$.currency", "ISO 4217"),
    ("currency-trailing-newline", T, make_payload(T, currency="EUR\n"), "$.currency", "ISO 4217"),
    (
        "numeric-currency",
        T,
        make_payload(T, currency=978),
        "$.currency",
        "must be a string, got number",
    ),
    # timestamps
    ("ts-words", T, make_payload(T, ts="yesterday"), "$.ts", "not an RFC 3339 date-time"),
    ("ts-naive", T, make_payload(T, ts="2024-05-01T09:15:02"), "$.ts", "naive date-time"),
    ("ts-naive-space", B, make_payload(B, ts="2024-05-01 09:15:02"), "$.ts", "naive date-time"),
    ("ts-date-only", P, make_payload(P, ts="2024-05-01"), "$.ts", "not an RFC 3339 date-time"),
    (
        "ts-epoch-number",
        T,
        make_payload(T, ts=1714554902120),
        "$.ts",
        "must be an RFC 3339 date-time string, got number",
    ),
    (
        "ts-feb-30",
        T,
        make_payload(T, ts="2024-02-30T00:00:00Z"),
        "$.ts",
        "day is out of range for month",
    ),
    ("ts-hour-25", R, make_payload(R, ts="2024-05-01T25:00:00Z"), "$.ts", "not a valid date-time"),
    (
        "ts-offset-24h",
        T,
        make_payload(T, ts="2024-05-01T09:15:02+24:00"),
        "$.ts",
        "not a valid date-time",
    ),
    (
        "ts-in-the-future",
        T,
        make_payload(T, ts="2024-05-01T09:20:02.121Z"),
        "$.ts",
        "300001 ms in the future (max skew 300000 ms, limits.max_future_skew_ms)",
    ),
    # profiles
    (
        "birth-date-feb-30",
        P,
        make_payload(P, birth_date="1990-02-30"),
        "$.birth_date",
        "not a valid calendar date",
    ),
    (
        "birth-date-us-format",
        P,
        make_payload(P, birth_date="02/03/1990"),
        "$.birth_date",
        "must be YYYY-MM-DD",
    ),
    (
        "consent-as-string",
        P,
        make_payload(P, marketing_consent="yes"),
        "$.marketing_consent",
        "must be a boolean, got string",
    ),
    (
        "consent-as-int",
        P,
        make_payload(P, marketing_consent=1),
        "$.marketing_consent",
        "must be a boolean, got number",
    ),
    # risk assessments
    ("score-101", R, make_payload(R, score=101), "$.score", "must be <= 100"),
    ("score-negative", R, make_payload(R, score=-1), "$.score", "must be >= 0"),
    ("score-fraction", R, make_payload(R, score=50.5), "$.score", "must be an integer"),
    ("score-bool", R, make_payload(R, score=True), "$.score", "got boolean"),
    ("score-string", R, make_payload(R, score="55"), "$.score", "got string"),
    (
        "experience-negative",
        R,
        make_payload(R, investment_experience_years=-1),
        "$.investment_experience_years",
        "must be >= 0",
    ),
    (
        "experience-bool",
        R,
        make_payload(R, investment_experience_years=False),
        "$.investment_experience_years",
        "must be a number, got boolean",
    ),
]


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 25
    assert len({case[0] for case in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize(
    ("topic", "raw", "field", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_rejected_with_field_and_reason(
    decoder: Decoder, topic: str, raw: bytes | None, field: str, fragment: str
) -> None:
    result = decoder.decode(topic, raw, now_ms=NOW_MS)
    assert isinstance(result, DecodeError), result
    assert result.field == field, result
    assert fragment in result.reason, result
    assert result.describe() == f"{field}: {result.reason}"


@pytest.mark.parametrize(
    "changes",
    [{"currency": "x" * 60_000}, {"amount": "9" * 60_000}, {"ts": "2" * 60_000}],
    ids=["currency", "amount", "ts"],
)
def test_reasons_stay_short_even_for_huge_values(decoder: Decoder, changes: dict[str, str]) -> None:
    """Reasons go to logs and dead letters: a 60 KB bad value must not be echoed back."""
    result = decoder.decode(T, make_payload(T, **changes))
    assert isinstance(result, DecodeError)
    assert len(result.reason) < 200


def test_oversize_payload_is_rejected_before_parsing(decoder: Decoder) -> None:
    # Not JSON and not UTF-8 either: if the decoder parsed first it would say so.
    raw = b"\xff" + b"{" * 70_000
    assert decoder.decode(T, raw) == DecodeError(
        "$", "payload 70001 bytes exceeds limit 65536 (limits.max_payload_bytes)"
    )


def test_the_size_limit_is_inclusive_and_configurable() -> None:
    valid = make_payload(T)
    tight = Decoder(max_bytes=len(valid))
    assert not isinstance(tight.decode(T, valid), DecodeError)
    padded = make_payload(T, note="x")  # a few bytes over the limit
    assert tight.decode(T, padded) == DecodeError(
        "$", f"payload {len(padded)} bytes exceeds limit {len(valid)} (limits.max_payload_bytes)"
    )


def test_future_skew_is_checked_only_with_a_clock_and_a_limit() -> None:
    far_future = make_payload(T, ts="2199-01-01T00:00:00Z")  # within limits.max_year
    assert not isinstance(Decoder().decode(T, far_future, now_ms=NOW_MS), DecodeError)
    skewed = Decoder(max_future_skew_ms=1000)
    assert not isinstance(skewed.decode(T, far_future), DecodeError)  # no now_ms given
    just_inside = make_payload(T, ts="2024-05-01T09:15:03.120Z")  # exactly now + 1000 ms
    assert not isinstance(skewed.decode(T, just_inside, now_ms=NOW_MS), DecodeError)
    result = skewed.decode(T, far_future, now_ms=NOW_MS)
    assert isinstance(result, DecodeError)
    assert result.field == "$.ts"
    assert "in the future" in result.reason


def test_unknown_topic_is_a_programming_error(decoder: Decoder) -> None:
    for topic in ("tier-changes", "dev.transactions", ""):
        with pytest.raises(ValueError, match="not an input topic"):
            decoder.decode(topic, make_payload(T))
    with pytest.raises(ValueError):
        decoder.decode("nope", None)  # even before looking at the payload


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"max_future_skew_ms": -1}])
def test_nonsense_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Decoder(**kwargs)
