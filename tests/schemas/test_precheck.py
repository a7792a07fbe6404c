"""The generated schema pre-checks (schemas/precheck.py) only ever conclude "valid":
for any document they return what the compiled validator returns, or raise exactly
what it raises. And the cached timestamp parser agrees with fromisoformat."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import fastjsonschema
import pytest

from schemas.decoder import DecodeError, _limited, compile_schema, load_schema
from schemas.events import INPUT_TOPICS, TOPIC_TICKS
from schemas.precheck import with_precheck
from schemas.values import timestamp, timestamp_fast
from tests.schemas.conftest import VALID

POOL: list[Any] = [
    None, True, False, 0, 1, -1, 0.0, -0.0, 1.5, 70.0, 100, 101, 150, 150.5, -5,
    10**15, 10**15 + 1, 1e15, 1e16, -(10**15), -(10**15) - 1,
    "", "x", "a\x00b", "a\x7f", "a\x1f", "\u2028", "é", "\x85", " ", "a" * 128, "a" * 129,
    "2026-01-01T00:00:00Z", "2026-01-01t00:00:00.123+08:00", "2026-01-01T00:00:00",
    "2026-01-01T00:00:00Z\n", "0", "0.00", "00", "01", "1.123456789", "123.45", "-1.5",
    "-0", "1e5", "999999999999999.99999999", "1000000000000000", "CNY", "cny", "CN\n",
    "deposit", "loan", "mobile", "transfer_in", "R1", "R6", "retail", "sme", "1990-01-01",
    "1990-1-1", "phone", "reached", [], {}, [1], {"a": 1}, "１２３", "ab", "abc", "hnw",
    "2026-01-01T00:00:00.123456789012345678901234567890Z", "a" * 40, "a" * 41,
]  # fmt: skip


def _outcome(validate: Any, doc: dict[str, Any]) -> tuple[Any, ...]:
    try:
        return ("ok", validate(doc) is doc)
    except fastjsonschema.JsonSchemaValueException as e:
        return ("error", e.message, e.name, e.rule, repr(e.value), repr(e.definition))


@pytest.mark.parametrize("limits", [None, (6, 40), (128, 64)], ids=["schema", "tight", "default"])
@pytest.mark.parametrize("topic", INPUT_TOPICS)
def test_precheck_behaves_exactly_like_the_validator(
    topic: str, limits: tuple[int, int] | None
) -> None:
    """Also with the decoder's string limits folded into the schema (maxLength)."""
    schema = load_schema(topic)
    if limits is not None:
        schema, _ = _limited(schema, *limits)
    plain = compile_schema(schema)
    checked = with_precheck(schema, plain)
    assert checked is not plain  # the input schemas are all covered
    rnd = random.Random(topic)
    base = VALID[topic]
    keys = [*base, "extra", "balance_after", "product_risk", "birth_date", "until", "tier"]
    passed = 0
    for _ in range(4000):
        doc = dict(base)
        for _ in range(rnd.choice([0, 1, 1, 2, 3])):
            key = rnd.choice(keys)
            if rnd.random() < 0.15:
                doc.pop(key, None)
            else:
                doc[key] = rnd.choice(POOL)
        result = _outcome(checked, doc)
        assert result == _outcome(plain, doc), doc
        passed += result[0] == "ok"
    assert passed > 100


def test_unknown_keywords_get_no_precheck() -> None:
    schema = load_schema(TOPIC_TICKS)
    schema["properties"]["partition"]["multipleOf"] = 2
    plain = compile_schema(load_schema(TOPIC_TICKS))
    assert with_precheck(schema, plain) is plain


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _reference_ts(value: str) -> int | DecodeError:
    try:
        return (datetime.fromisoformat(value.upper()) - _EPOCH) // timedelta(milliseconds=1)
    except ValueError:
        return timestamp(value)


def test_cached_timestamps_match_fromisoformat() -> None:
    rnd = random.Random(7)
    parts = {
        "y": ["2026", "1970", "0001", "9999", "1969"],
        "mo": ["01", "02", "12", "13"],
        "d": ["01", "28", "29", "30", "31"],
        "h": ["00", "23", "24"],
        "mi": ["00", "59", "60"],
        "s": ["00", "59", "60"],
        "frac": ["", ".000", ".999", ".123", ".5", ".123456789"],
        "off": ["Z", "z", "+08:00", "-05:30", "+23:59", "+24:00", "-00:00"],
    }
    for _ in range(20000):
        p = {k: rnd.choice(v) for k, v in parts.items()}
        t = rnd.choice("Tt")
        value = f"{p['y']}-{p['mo']}-{p['d']}{t}{p['h']}:{p['mi']}:{p['s']}{p['frac']}{p['off']}"
        assert timestamp_fast(value) == _reference_ts(value), value
        assert timestamp_fast(value) == _reference_ts(value), value  # cached the second time
