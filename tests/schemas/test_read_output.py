"""schemas/outputs.py: reading tierstream's outputs back by their contract (the KPI
job's reader): every example reads, anything else is a DecodeError naming the field."""

from __future__ import annotations

import orjson
import pytest

from schemas.decoder import DecodeError
from schemas.events import OUTPUT_TOPICS
from schemas.outputs import read_output
from tests.schemas.conftest import load_examples


@pytest.mark.parametrize("topic", OUTPUT_TOPICS)
def test_every_output_example_reads_back_with_its_time(topic: str) -> None:
    for example in load_examples(topic):
        key = example.get("customer_id", "k").encode() if topic != "dead-letters" else None
        rec = read_output(topic, key, orjson.dumps(example))
        assert not isinstance(rec, DecodeError), rec
        assert isinstance(rec["ts_ms"], int)


@pytest.mark.parametrize(
    ("key", "change", "field"),
    [
        (b"C0000001", {"extra": 1}, "$.extra"),
        (b"C0000001", {"to_tier": "vip"}, "$.to_tier"),
        (b"C0000001", {"ts": "2024-05-01T09:15:02Z"}, "$.ts"),  # not the writer's form
        (b"C0000002", {}, "key"),
        (None, {}, "key"),
    ],
)
def test_a_record_off_the_contract_is_a_decode_error(
    key: bytes | None, change: dict[str, object], field: str
) -> None:
    doc = {**load_examples("tier-changes")[0], **change}
    assert doc["customer_id"] == "C0000001"
    rec = read_output("tier-changes", key, orjson.dumps(doc))
    assert isinstance(rec, DecodeError) and rec.field == field, rec


def test_bytes_that_are_no_record() -> None:
    assert read_output("offers", b"k", b"") == DecodeError("$", "empty payload")
    rec = read_output("offers", b"k", b"[1]")
    assert isinstance(rec, DecodeError) and "must be a JSON object" in rec.reason
    rec = read_output("offers", b"k", b"\xff")
    assert isinstance(rec, DecodeError) and "UTF-8" in rec.reason
    with pytest.raises(ValueError, match="not an output topic"):
        read_output("transactions", b"k", b"{}")
