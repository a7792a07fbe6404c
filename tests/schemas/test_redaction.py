"""Personal fields out of dead letters (schemas/redaction.py), no services."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.dead_letter import dead_letter_record, original_value
from schemas.decoder import validate_output
from schemas.redaction import DEFAULT_FIELDS, Redactor, normalize, parse_exact
from state.rules import load_rules
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.records import RawMessage

TS_MS = 1714554902120
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
BAD_TX = (
    b'{"event_id": "tx-1", "customer_id": "C1", "amount": 1.10, "amount2": 1e400, '
    b'"first_name": "Wei", "contact": {"Phone-Number": "+86 138 0000 0000", '
    b'"emails": [{"email": "wei@example.com"}]}, "note": "keep me", "birth_date": null}'
)


def _letter(raw: bytes | None, redactor: Redactor) -> dict[str, Any]:
    record = dead_letter_record("dev.transactions", 1, 7, b"C1", raw, "$.amount: bad", TS_MS)
    out = redactor.apply(record, raw)
    validate_output("dead-letters", out)
    return out


def test_personal_fields_are_replaced_at_any_depth_and_the_rest_stays_exact() -> None:
    record = _letter(BAD_TX, Redactor())
    value = original_value(record)
    assert value is not None
    for personal in (b"Wei", b"138 0000", b"wei@example.com"):
        assert personal not in value
    assert record["value_redacted"] == [
        "$.first_name",
        "$.contact.Phone-Number",
        "$.contact.emails[0].email",
        "$.birth_date",
    ]
    # numbers keep the literal the producer wrote (1.10, not 1.1; 1e400, not inf)
    assert b'"amount":1.10' in value and b'"amount2":1e400' in value
    assert b'"note":"keep me"' in value
    assert record["value_sha256"] == hashlib.sha256(BAD_TX).hexdigest()
    assert record["value_size"] == len(BAD_TX)
    doc = json.loads(value.replace(b"1e400", b"0"))
    assert doc["first_name"] == "redacted:sha256:" + hashlib.sha256(b'"Wei"').hexdigest()
    assert doc["birth_date"] == "redacted:sha256:" + hashlib.sha256(b"null").hexdigest()


def test_with_a_key_the_digest_is_an_hmac_and_equal_values_share_it() -> None:
    key = b"k" * 32
    a = json.loads(original_value(_letter(b'{"phone": "123"}', Redactor(key=key))) or b"")
    b = json.loads(original_value(_letter(b'{"mobile": "123", "x": 1}', Redactor(key=key))) or b"")
    expected = "redacted:hmac-sha256:" + hmac.new(key, b'"123"', hashlib.sha256).hexdigest()
    assert a["phone"] == b["mobile"] == expected


def test_a_value_without_personal_fields_stays_byte_exact() -> None:
    raw = b'{ "event_id" : "tx-1",  "amount": -5 }'
    record = _letter(raw, Redactor())
    assert original_value(record) == raw
    assert "value_redacted" not in record and "value_sha256" not in record


def test_values_that_cannot_be_searched_are_withheld_keeping_size_and_digest() -> None:
    for raw in (b"{not json", b"\xff\xfe\x00", b'"Wei, +86 138"', b"[1, 2]", b"{" * 5000):
        record = _letter(raw, Redactor())
        assert record["value"] is None and record["value_withheld"] is True
        assert record["value_sha256"] == hashlib.sha256(raw).hexdigest()
        assert record["value_size"] == len(raw)
    big = b'{"a": "' + b"x" * 70000 + b'"}'
    record = _letter(big, Redactor())
    assert record["value_withheld"] is True and "value_truncated" not in record


def test_redaction_can_be_switched_off_and_names_match_loosely() -> None:
    assert original_value(_letter(BAD_TX, Redactor(fields=()))) == BAD_TX
    assert original_value(_letter(b"{nope", Redactor(fields=()))) == b"{nope"
    assert normalize("First-Name") == normalize("firstName") == normalize("first_name")
    assert {"phone", "email", "birthdate", "address", "idnumber"} <= Redactor().fields
    assert len(DEFAULT_FIELDS) == len(set(DEFAULT_FIELDS))


_keys = st.sampled_from(["name", "Phone", "e-mail", "EMAIL", "amount", "note", "id", "x"])
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False),
)
_json = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(_keys, _json, max_size=6))
def test_no_personal_value_survives_and_nothing_else_changes(doc: dict[str, Any]) -> None:
    """On random nested documents: every value under a personal key is a digest, and
    the document with those values put back equals the original."""
    raw = orjson.dumps(doc)
    redactor = Redactor(fields=("name", "phone", "email"))
    record = _letter(raw, redactor)
    value = original_value(record)
    assert value is not None
    got = json.loads(value)

    def restore(orig: Any, red: Any) -> Any:
        if isinstance(orig, dict):
            assert isinstance(red, dict) and list(red) == list(orig)
            out = {}
            for k in orig:
                if normalize(k) in redactor.fields:
                    exact = parse_exact(orjson.dumps(orig[k]).decode())
                    assert red[k] == f"redacted:{redactor.digest(exact)}"
                    out[k] = orig[k]
                else:
                    out[k] = restore(orig[k], red[k])
            return out
        if isinstance(orig, list):
            return [restore(o, r) for o, r in zip(orig, red, strict=True)]
        assert red == orig
        return orig

    assert restore(json.loads(raw), got) == json.loads(raw)


def test_the_worker_pipeline_redacts_its_dead_letters() -> None:
    msg = RawMessage("transactions", 0, 5, b"C1", BAD_TX, TS_MS, "p.transactions")
    result = BatchProcessor(load_rules(None)).process([msg], lambda _p, _k: None)
    [out] = result.outputs
    record = orjson.loads(out.value)
    assert record["value_redacted"] and b"Wei" not in base64.b64decode(record["value"])


#: The originals of the redacted and withheld dead-letter examples.
EXAMPLE_ORIGINALS = {
    88: b'{"event_id":"p-7","customer_id":"C000042","ts":"2024-05-01T09:15:02+08:00",'
    b'"segment":"retail","marketing_consent":"yes","birth_date":"1980-02-29",'
    b'"phone":"+86 138 0013 8000"}',
    301: b'{"event_id": "tx-9", "customer_id": "C000043", "name": "Li Wei", "amount": 12',
}


def test_the_redacted_dead_letter_examples_are_what_the_worker_writes() -> None:
    examples = [
        e
        for e in json.loads((SCHEMAS / "examples" / "dead-letters.json").read_text())
        if "value_redacted" in e or "value_withheld" in e
    ]
    assert {e["offset"] for e in examples} == set(EXAMPLE_ORIGINALS)
    for example in examples:
        raw = EXAMPLE_ORIGINALS[example["offset"]]
        record = dead_letter_record(
            example["source_topic"],
            example["partition"],
            example["offset"],
            example["key"].encode(),
            raw,
            example["error"],
            TS_MS,
        )
        assert Redactor().apply(record, raw) == example


def test_a_value_nested_deeper_than_the_walk_can_go_is_withheld() -> None:
    """Found by fuzzing through a worker: arrays nested ~0.7x the recursion limit parse
    (one frame per level) but the walk takes two frames per level and raised
    RecursionError while the dead letter was built, stopping the worker."""
    import sys

    depth = int(sys.getrecursionlimit() * 0.7)
    for raw in (
        b'{"a":' + b"[" * depth + b"]" * depth + b"}",
        b'{"name":"x","a":' + b"[" * depth + b"]" * depth + b"}",
    ):
        assert parse_exact(raw.decode()) is not None  # parsing alone copes
        rec = _letter(raw, Redactor())
        assert rec["value"] is None and rec["value_withheld"] is True
        assert rec["value_size"] == len(raw)
