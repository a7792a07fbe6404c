"""Dead-letter records keep the rejected message byte-exact and match their schema."""

from __future__ import annotations

import base64
import decimal
import hashlib

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.dead_letter import (
    MAX_ERROR_CHARS,
    MAX_KEY_BYTES,
    MAX_RECORD_BYTES,
    MAX_VALUE_BYTES,
    REASON_INTERNAL,
    dead_letter_message_key,
    dead_letter_record,
    internal_dead_letter_record,
    internal_error_text,
    original_key,
    original_value,
)
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


# ------------------------------------------------------------- always sendable (issue 18)


def test_a_huge_key_keeps_its_prefix_size_and_hash() -> None:
    """A 170 KB key was copied whole and the dead letter itself was too large."""
    key = b"C" * 170_000
    rec = dead_letter_record("transactions", 1, 7, key, b"{}", "key: too long", TS_MS)
    validate_output("dead-letters", rec)
    assert rec["key"] == "C" * MAX_KEY_BYTES and rec["key_encoding"] == "utf-8"
    assert rec["key_truncated"] is True and rec["key_size"] == 170_000
    assert rec["key_sha256"] == hashlib.sha256(key).hexdigest()
    assert original_key(rec) == key[:MAX_KEY_BYTES]
    assert dead_letter_message_key(key) == key[:MAX_KEY_BYTES]
    assert dead_letter_message_key(b"C1") == b"C1" and dead_letter_message_key(None) is None
    assert len(orjson.dumps(rec)) < 2 * MAX_KEY_BYTES + 1000


def test_a_text_key_is_cut_at_a_character_boundary() -> None:
    key = "é".encode() * 600  # 1200 bytes; byte 1024 is the middle of nothing, 1023 would be
    rec = dead_letter_record("t", 0, 0, key + b"x", b"v", "e", TS_MS)
    assert rec["key_encoding"] == "utf-8" and rec["key"] == "é" * 512
    odd = b"a" + key  # now byte 1024 splits an é: the prefix drops it
    rec = dead_letter_record("t", 0, 0, odd, b"v", "e", TS_MS)
    assert rec["key"] == "a" + "é" * 511
    assert dead_letter_message_key(odd) == ("a" + "é" * 511).encode()


def test_a_long_binary_key_keeps_its_first_bytes_in_base64() -> None:
    key = b"\xff" * 5000
    rec = dead_letter_record("t", 0, 0, key, b"v", "e", TS_MS)
    validate_output("dead-letters", rec)
    assert rec["key_encoding"] == "base64" and original_key(rec) == key[:MAX_KEY_BYTES]


def test_a_key_at_the_limit_is_kept_whole() -> None:
    rec = dead_letter_record("t", 0, 0, b"k" * MAX_KEY_BYTES, b"v", "e", TS_MS)
    assert "key_truncated" not in rec and original_key(rec) == b"k" * MAX_KEY_BYTES


@pytest.mark.parametrize("ts_ms", [2**63 - 1, -(2**63), -1, 253402300800000])
def test_any_kafka_timestamp_gives_a_valid_time(ts_ms: int) -> None:
    """Producers set any 64-bit timestamp; formatting one past year 9999 raised."""
    rec = dead_letter_record("t", 0, 0, None, b"v", "e", ts_ms)
    validate_output("dead-letters", rec)


def test_long_error_texts_are_cut() -> None:
    rec = dead_letter_record("t", 0, 0, None, b"v", "x" * 100_000, TS_MS)
    assert len(rec["error"]) == MAX_ERROR_CHARS + len(" ...[cut]")
    assert dead_letter_record("t", 0, 0, None, b"v", "", TS_MS)["error"] == "?"


# ------------------------------------------------------------- internal errors


def test_an_internal_error_names_its_type_and_class() -> None:
    rec = internal_dead_letter_record(
        "dev.balances", 2, 9, b"C1", b"{}", ValueError("year 0 is out of range"), TS_MS
    )
    validate_output("dead-letters", rec)
    assert rec["reason_class"] == REASON_INTERNAL == "internal"
    assert rec["error"] == "$: internal error ValueError: year 0 is out of range"
    assert original_value(rec) == b"{}" and original_key(rec) == b"C1"


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_internal_error_text_never_raises_and_stays_short() -> None:
    assert internal_error_text(_Unprintable()) == (
        f"$: internal error {__name__}._Unprintable: <message unavailable>"
    )
    huge = internal_error_text(KeyError("k" * 1_000_000))
    assert huge.startswith("$: internal error KeyError: ") and len(huge) < MAX_ERROR_CHARS + 20
    assert "internal error decimal.InvalidOperation" in internal_error_text(
        decimal.InvalidOperation()
    )


def test_reason_classes_are_printable_labels() -> None:
    rec = dead_letter_record("t", 0, 0, None, b"v", "e", TS_MS, reason_class="a\x00b" * 50)
    validate_output("dead-letters", rec)
    assert rec["reason_class"] == ("a?b" * 50)[:64]


# ------------------------------------------------------------- the size bound, at the extremes

_KEYS = st.one_of(
    st.none(),
    st.binary(max_size=2 * MAX_KEY_BYTES),
    st.integers(0, 200_000).map(lambda n: b"\x01" * n),  # 6 bytes each as JSON text
    st.integers(0, 60_000).map(lambda n: "\U0001f600".encode() * n),
    st.integers(0, 200_000).map(lambda n: b"\xff" * n),
    st.text(max_size=3000).map(str.encode),
)
_VALUES = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.integers(0, 300_000).map(lambda n: b"\x00" * n),
    st.sampled_from([b"", b"x" * MAX_VALUE_BYTES, b"x" * (MAX_VALUE_BYTES + 1)]),
)
_TEXT = st.one_of(
    st.text(max_size=300),
    st.integers(0, 20_000).map(lambda n: "\x1f" * n),
    st.sampled_from(["", "$.amount: must be > 0"]),
)
_TOPICS = st.text(alphabet="abcxyz._-0123456789", min_size=1, max_size=300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _TOPICS,
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**63 - 1),
    _KEYS,
    _VALUES,
    _TEXT,
    st.integers(-(2**63), 2**63 - 1),
    st.one_of(st.none(), _TEXT),
)
def test_every_dead_letter_is_valid_and_within_the_bound(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    error: str,
    ts_ms: int,
    reason_class: str | None,
) -> None:
    rec = dead_letter_record(
        topic, partition, offset, key, raw, error, ts_ms, reason_class=reason_class
    )
    validate_output("dead-letters", rec)
    size = len(orjson.dumps(rec))
    assert size <= MAX_RECORD_BYTES
    message_key = dead_letter_message_key(key)
    assert message_key is None or len(message_key) <= MAX_KEY_BYTES
    if key is not None:
        assert original_key(rec) == key[: len(original_key(rec) or b"")]
    if raw is not None:
        assert original_value(rec) == raw[:MAX_VALUE_BYTES]


def test_the_bound_is_far_below_the_brokers_message_limit() -> None:
    assert MAX_RECORD_BYTES + MAX_KEY_BYTES < 200_000 < 1_048_576


def test_the_bound_is_reached_closely_by_the_worst_record() -> None:
    rec = dead_letter_record(
        "x" * 249, 2**31 - 1, 2**63 - 1, b"\x01" * 5000, b"v" * 100_000, "\x01" * 5000,
        TS_MS, reason_class="\x01" * 100,
    )  # fmt: skip
    size = len(orjson.dumps(rec))
    assert 0.8 * MAX_RECORD_BYTES < size <= MAX_RECORD_BYTES
