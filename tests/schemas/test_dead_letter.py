"""Dead-letter records keep the rejected message byte-exact and match their schema."""

from __future__ import annotations

import base64

import pytest

from schemas.dead_letter import dead_letter_record, original_key, original_value
from schemas.decoder import DecodeError, Decoder, validate_output

TS_MS = 1714554902120


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        (b"C000042", b'{"event_id": "tx-1", "amount": -5}'),
        (b"\xff\xfeC1", b"\xff\xfe\x00 not utf-8 \x80"),
        (None, None),
        (b"", b""),
        ("Zürich-7".encode(), bytes(range(256))),
    ],
)
def test_record_round_trips_key_and_value_bytes(key: bytes | None, raw: bytes | None) -> None:
    record = dead_letter_record("dev.transactions", 3, 1045, key, raw, "$: not valid JSON", TS_MS)
    validate_output("dead-letters", record)
    assert original_key(record) == key
    assert original_value(record) == raw


def test_key_is_readable_text_when_utf8_and_base64_otherwise() -> None:
    text = dead_letter_record("t", 0, 0, "Zürich-7".encode(), b"x", "e", TS_MS)
    assert (text["key"], text["key_encoding"]) == ("Zürich-7", "utf-8")
    binary = dead_letter_record("t", 0, 0, b"\xff\x00", b"x", "e", TS_MS)
    assert (binary["key"], binary["key_encoding"]) == ("/wA=", "base64")
    none = dead_letter_record("t", 0, 0, None, b"x", "e", TS_MS)
    assert (none["key"], none["key_encoding"]) == (None, None)


def test_absent_value_and_empty_value_stay_distinct() -> None:
    assert dead_letter_record("t", 0, 0, None, None, "e", TS_MS)["value"] is None
    assert dead_letter_record("t", 0, 0, None, b"", "e", TS_MS)["value"] == ""


def test_record_fields_for_a_decoder_rejection() -> None:
    raw = b'{"event_id":"tx-1","amount":"-5"}'
    error = Decoder().decode("transactions", raw)
    assert isinstance(error, DecodeError)
    record = dead_letter_record("transactions", 2, 99, b"C1", raw, error.describe(), TS_MS)
    assert record == {
        "source_topic": "transactions",
        "partition": 2,
        "offset": 99,
        "key": "C1",
        "key_encoding": "utf-8",
        "value": base64.b64encode(raw).decode(),
        "error": "$.customer_id: required field missing",
        "ts": "2024-05-01T09:15:02.120Z",
    }
    validate_output("dead-letters", record)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": "not base64!"}, "$.value: must be standard base64"),
        ({"key_encoding": None}, "$.key_encoding: must be a string"),
        ({"partition": -1}, "$.partition: must be >= 0"),
        ({"offset": "7"}, "$.offset: must be an integer"),
        ({"error": ""}, "$.error: must not be empty"),
    ],
)
def test_schema_rejects_malformed_dead_letters(change: dict[str, object], message: str) -> None:
    record = dead_letter_record("t", 0, 0, b"k", b"v", "e", TS_MS)
    record.update(change)
    with pytest.raises(ValueError) as info:
        validate_output("dead-letters", record)
    assert message in str(info.value)


def test_a_huge_value_is_truncated_with_its_size_and_hash() -> None:
    import base64
    import hashlib

    from schemas.dead_letter import MAX_VALUE_BYTES, dead_letter_record
    from schemas.decoder import validate_output

    raw = b"x" * 1_000_000
    rec = dead_letter_record("t", 0, 5, b"k", raw, "$: payload too large", 0)
    validate_output("dead-letters", rec)
    assert base64.b64decode(rec["value"]) == raw[:MAX_VALUE_BYTES]
    assert rec["value_truncated"] is True and rec["value_size"] == 1_000_000
    assert rec["value_sha256"] == hashlib.sha256(raw).hexdigest()
    small = dead_letter_record("t", 0, 5, b"k", b"abc", "e", 0)
    assert "value_truncated" not in small
