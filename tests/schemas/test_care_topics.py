"""The two topics of relationship care: ``contacts`` (a customer input from the CRM)
and ``ticks`` (the clock's internal topic, decoded by ``Decoder.decode_tick``)."""

from __future__ import annotations

import json

import orjson
import pytest

from schemas.decoder import DecodeError, Decoder
from schemas.events import (
    INPUT_TOPICS,
    TICK_TOPICS,
    TOPIC_CONTACTS,
    TOPIC_ERASURE_REQUESTS,
    TOPIC_TICKS,
    Contact,
    Tick,
)
from tests.schemas.conftest import DROP, load_examples, make_payload


def test_the_inputs_order_and_ticks_is_not_an_input() -> None:
    """The bench's data files index INPUT_TOPICS, so contacts keeps index 4; inputs
    added later come after the first five (issue 23's offer responses, issue 22's tier
    overrides), and erasure requests come last in the tie-break order (an erasure
    stamped at the same millisecond as another input is applied after it and erases
    it too, offer responses and overrides included)."""
    assert INPUT_TOPICS.index(TOPIC_CONTACTS) == 4
    assert INPUT_TOPICS[5:] == ("offer-responses", "tier-overrides", TOPIC_ERASURE_REQUESTS)
    assert TOPIC_TICKS not in INPUT_TOPICS and TICK_TOPICS == (TOPIC_TICKS,)


def test_contact_example_maps_to_the_right_attributes(decoder: Decoder) -> None:
    event = decoder.decode("contacts", orjson.dumps(load_examples("contacts")[0]))
    assert event == Contact(
        event_id="crm-C000042-20240502-1",
        customer_id="C000042",
        ts=1714615500000,  # 10:05+08:00
        channel="phone",
        outcome="reached",
    )


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"channel": "fax"}, "$.channel: unknown value 'fax' (allowed: phone, branch, video"),
        ({"outcome": "maybe"}, "$.outcome: unknown value 'maybe' (allowed: reached, no_answer"),
        ({"outcome": DROP}, "$.outcome: required field missing"),
        ({"ts": "2024-05-01T08:00:00"}, "$.ts: naive date-time"),
        ({"customer_id": ""}, "$.customer_id: must not be empty"),
    ],
)
def test_bad_contacts_say_which_field(decoder: Decoder, changes: dict, error: str) -> None:  # type: ignore[type-arg]
    result = decoder.decode("contacts", make_payload("contacts", **changes))
    assert isinstance(result, DecodeError)
    assert result.describe().startswith(error)


def test_every_tick_example_decodes(decoder: Decoder) -> None:
    first, second = load_examples("ticks")
    assert decoder.decode_tick(json.dumps(first).encode()) == Tick(
        "tick-3-1714557600000", 3, 1714557600000
    )
    assert decoder.decode_tick(json.dumps(second).encode()) == Tick(
        "tick-0-1714557660000", 0, 1714557660000
    )


def _tick(**changes: object) -> bytes:
    doc: dict[str, object] = {
        "event_id": "tick-2-1714557600000",
        "partition": 2,
        "ts": "2024-05-01T10:00:00Z",
    }
    doc.update(changes)
    return orjson.dumps({k: v for k, v in doc.items() if v is not DROP})


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (_tick(event_id="tick-1-1714557600000"), "$.event_id: must be tick-<partition>-<ts_ms>"),
        (_tick(event_id="tick-2-1714557600001"), "$.event_id: must be tick-<partition>-<ts_ms>"),
        (_tick(event_id="clock"), "$.event_id: must be tick-<partition>-<ts_ms> = "),
        (_tick(partition=-1), "$.partition: must be >= 0"),
        (_tick(partition="2"), "$.partition: must be an integer, got string"),
        (_tick(ts=DROP), "$.ts: required field missing"),
        (_tick(ts="yesterday"), "$.ts: not an RFC 3339 date-time"),
        (b"", "$: empty payload"),
        (b"[]", "$: must be a JSON object, got array"),
    ],
)
def test_bad_ticks_say_which_field(decoder: Decoder, raw: bytes, error: str) -> None:
    result = decoder.decode_tick(raw)
    assert isinstance(result, DecodeError)
    assert result.describe().startswith(error), result.describe()


def test_tick_from_the_future_is_rejected_like_any_input(decoder: Decoder) -> None:
    now = 1714557600000 - 10 * 60_000  # the tick is 10 minutes ahead, limit is 5
    result = decoder.decode_tick(_tick(), now_ms=now)
    assert isinstance(result, DecodeError) and "in the future" in result.reason
    assert isinstance(decoder.decode_tick(_tick(), now_ms=1714557600000), Tick)


def test_decode_refuses_ticks_and_points_to_decode_tick(decoder: Decoder) -> None:
    with pytest.raises(ValueError, match="use decode_tick"):
        decoder.decode("ticks", _tick())
