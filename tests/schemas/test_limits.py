"""The decoder's limits (docs/rules.md, "Limits"): every bound an input controls is
checked before the core sees the event, and the reason names the field and the limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.decoder import DecodeError, Decoder, DecoderLimits
from schemas.events import CustomerProfile, Tick, Transaction
from tests.schemas.conftest import make_payload

T = "transactions"
P = "customer-profiles"


@pytest.fixture(scope="module")
def dec() -> Decoder:
    return Decoder()


def _tick(ts_text: str, ts_ms: int) -> bytes:
    return json.dumps({"event_id": f"tick-0-{ts_ms}", "partition": 0, "ts": ts_text}).encode()


@pytest.mark.parametrize(
    ("ts", "limit"),
    [
        ("0001-01-01T00:00:00+01:00", "limits.min_year"),  # the record of issue 18
        ("0001-01-01T00:00:00Z", "limits.min_year"),
        ("1899-12-31T23:59:59.999Z", "limits.min_year"),
        ("1900-01-01T00:00:00+00:01", "limits.min_year"),  # 1899 in UTC
        ("2201-01-01T00:00:00Z", "limits.max_year"),
        ("2200-12-31T23:59:59-12:00", "limits.max_year"),  # 2201 in UTC
        ("9999-12-31T23:59:59.999-23:59", "limits.max_year"),
    ],
)
def test_event_time_outside_the_years_is_rejected(dec: Decoder, ts: str, limit: str) -> None:
    result = dec.decode(T, make_payload(T, ts=ts))
    assert isinstance(result, DecodeError)
    assert (result.field, result.limit) == ("$.ts", limit)
    assert limit in result.reason and ts in result.reason


@pytest.mark.parametrize(
    "ts",
    ["1900-01-01T00:00:00Z", "1900-01-01T08:00:00+08:00", "2200-12-31T23:59:59.999Z"],
)
def test_the_ends_of_the_years_are_inclusive(dec: Decoder, ts: str) -> None:
    assert isinstance(dec.decode(T, make_payload(T, ts=ts)), Transaction)


def test_ticks_have_the_same_time_range(dec: Decoder) -> None:
    ok = dec.decode_tick(_tick("2024-05-01T00:00:00Z", 1714521600000))
    assert isinstance(ok, Tick)
    early = dec.decode_tick(_tick("0001-01-01T00:00:00Z", -62135596800000))
    assert isinstance(early, DecodeError) and early.limit == "limits.min_year"


def test_the_years_are_configurable() -> None:
    narrow = Decoder(min_year=2000, max_year=2030)
    assert isinstance(narrow.decode(T, make_payload(T, ts="2030-12-31T23:59:59Z")), Transaction)
    late = narrow.decode(T, make_payload(T, ts="2031-01-01T00:00:00Z"))
    assert isinstance(late, DecodeError) and "2030" in late.reason


@pytest.mark.parametrize(
    ("birth", "limit"),
    [("1899-12-31", "limits.min_year"), ("0001-01-01", "limits.min_year"),
     ("2201-01-01", "limits.max_year"), ("9999-12-31", "limits.max_year")],
)  # fmt: skip
def test_birth_dates_outside_the_years_are_rejected(dec: Decoder, birth: str, limit: str) -> None:
    result = dec.decode(P, make_payload(P, birth_date=birth))
    assert isinstance(result, DecodeError)
    assert (result.field, result.limit) == ("$.birth_date", limit)


def test_birth_dates_at_the_ends_are_accepted(dec: Decoder) -> None:
    for birth in ("1900-01-01", "2200-12-31"):
        event = dec.decode(P, make_payload(P, birth_date=birth))
        assert isinstance(event, CustomerProfile) and event.birth_date == birth


def test_key_size_is_checked_before_anything_is_read(dec: Decoder) -> None:
    assert dec.check_key(None) is None
    assert dec.check_key(b"k" * 512) is None
    result = dec.check_key(b"k" * 170_000)  # the dead letter of issue 18
    assert result == DecodeError(
        "key", "message key 170000 bytes exceeds limit 512 (limits.max_key_bytes)"
    )
    assert result.limit == "limits.max_key_bytes"
    assert Decoder(max_key_bytes=8).check_key(b"123456789") is not None


def test_id_limit_lowers_the_schema_cap_and_names_itself() -> None:
    tight = Decoder(max_id_chars=16)
    assert isinstance(tight.decode(T, make_payload(T, account_id="A" * 16)), Transaction)
    result = tight.decode(T, make_payload(T, account_id="A" * 17))
    assert result == DecodeError(
        "$.account_id", "must be at most 16 characters (limits.max_id_chars)"
    )
    assert isinstance(result, DecodeError) and result.limit == "limits.max_id_chars"
    # at the schemas' own cap the schema is the bound: no limit named
    plain = Decoder().decode(T, make_payload(T, customer_id="C" * 129))
    assert isinstance(plain, DecodeError) and plain.limit is None


def test_every_other_string_field_is_bounded(dec: Decoder) -> None:
    """The one string field the schemas leave unbounded is the time's fraction."""
    at_limit = "2024-05-01T09:15:02." + "1" * 43 + "Z"  # 64 characters
    assert len(at_limit) == 64
    assert isinstance(dec.decode(T, make_payload(T, ts=at_limit)), Transaction)
    over = dec.decode(T, make_payload(T, ts=at_limit.replace("Z", "1Z")))
    assert over == DecodeError("$.ts", "must be at most 64 characters (limits.max_field_chars)")


def test_oversize_payload_names_its_limit(dec: Decoder) -> None:
    result = dec.decode(T, b"{" * 70_000)
    assert isinstance(result, DecodeError) and result.limit == "limits.max_payload_bytes"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_key_bytes": 0},
        {"max_id_chars": 0},
        {"max_id_chars": 129},
        {"max_field_chars": 34},
        {"min_year": 2000, "max_year": 1999},
        {"min_year": 1},
        {"max_year": 9999},
    ],
)
def test_nonsense_limits_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Decoder(**kwargs)


def test_limits_pass_as_one_typed_mapping() -> None:
    limits: DecoderLimits = {
        "max_bytes": 1000,
        "max_future_skew_ms": 0,
        "max_key_bytes": 64,
        "max_id_chars": 32,
        "max_field_chars": 40,
        "min_year": 1950,
        "max_year": 2100,
    }
    dec = Decoder(**limits)
    assert dec.max_bytes == 1000
    future = dec.decode(T, make_payload(T, ts="2024-05-01T00:00:01Z"), now_ms=1714521600000)
    assert isinstance(future, DecodeError) and future.limit == "limits.max_future_skew_ms"
