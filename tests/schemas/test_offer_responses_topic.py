"""The ``offer-responses`` input (issue 23): its contract, its examples and the
decoder's reasons for bad records (they are dead-lettered like every input's)."""

from __future__ import annotations

import orjson
import pytest

from schemas.decoder import DecodeError, Decoder
from schemas.events import INPUT_TOPICS, TOPIC_OFFER_RESPONSES, OfferResponse
from tests.schemas.conftest import DROP, load_examples, make_payload


def test_offer_responses_is_an_input_after_the_others_and_before_erasure() -> None:
    """After the five original inputs (the bench's data files index them) and before
    erasure requests, which stay last in the tie-break order."""
    assert TOPIC_OFFER_RESPONSES == "offer-responses"
    assert INPUT_TOPICS == (
        "transactions",
        "balances",
        "customer-profiles",
        "risk-assessments",
        "contacts",
        "offer-responses",
        "tier-overrides",  # issue 22
        "erasure-requests",
    )


def test_examples_map_to_the_right_attributes(decoder: Decoder) -> None:
    first, second, third = load_examples("offer-responses")
    assert decoder.decode("offer-responses", orjson.dumps(first)) == OfferResponse(
        event_id="mkt-resp-20240503-000917",
        customer_id="C000042",
        ts=1714717330000,  # 14:22:10+08:00
        offer_event_id="3f1c0a7e9b2d4c6f8a1e0b3d5c7f9a2e",
        outcome="accepted",
        channel="mobile",
        product_id="WM-03",
    )
    resp = decoder.decode("offer-responses", orjson.dumps(second))
    assert isinstance(resp, OfferResponse)
    assert (resp.outcome, resp.channel, resp.product_id) == ("declined", "call_center", None)
    resp = decoder.decode("offer-responses", orjson.dumps(third))
    assert isinstance(resp, OfferResponse)
    assert (resp.outcome, resp.channel, resp.product_id) == ("ignored", None, None)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"offer_event_id": DROP}, "$.offer_event_id: required field missing"),
        ({"offer_event_id": "ABCDEF0123456789abcdef0123456789"}, "$.offer_event_id: must match"),
        ({"offer_event_id": "0123456789abcdef"}, "$.offer_event_id: must match"),
        ({"offer_event_id": 42}, "$.offer_event_id: must be a string"),
        ({"outcome": "maybe"}, "$.outcome: unknown value 'maybe' (allowed: accepted, declined"),
        ({"outcome": DROP}, "$.outcome: required field missing"),
        ({"channel": "SMS"}, "$.channel: must match"),
        ({"channel": 3}, "$.channel: must be a string or null"),
        ({"product_id": ""}, "$.product_id: must not be empty"),
        ({"product_id": "x" * 65}, "$.product_id: must be at most 64 characters"),
        ({"ts": "2024-05-03T08:00:00"}, "$.ts: naive date-time"),
        ({"customer_id": DROP}, "$.customer_id: required field missing"),
    ],
)
def test_bad_responses_say_which_field(decoder: Decoder, changes: dict, error: str) -> None:  # type: ignore[type-arg]
    result = decoder.decode("offer-responses", make_payload("offer-responses", **changes))
    assert isinstance(result, DecodeError)
    assert result.describe().startswith(error), result.describe()


def test_optional_fields_may_be_absent_or_null(decoder: Decoder) -> None:
    for changes in ({}, {"channel": None, "product_id": None}):
        resp = decoder.decode("offer-responses", make_payload("offer-responses", **changes))
        assert isinstance(resp, OfferResponse)
        assert resp.channel is None and resp.product_id is None
