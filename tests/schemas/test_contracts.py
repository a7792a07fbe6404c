"""The contract files themselves: every topic has a schema and examples, the examples
are valid, the schemas list the same enumerations as the code, and what the core emits
(state.decisions ... to_record()) satisfies the output schemas."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas.decoder import DecodeError, Decoder, load_schema, validate_output
from schemas.events import (
    CHANNELS,
    CONTACT_CHANNELS,
    CONTACT_OUTCOMES,
    INPUT_TOPICS,
    OFFER_OUTCOMES,
    OUTPUT_TOPICS,
    PRODUCT_RISKS,
    PRODUCTS,
    SEGMENTS,
    TICK_TOPICS,
    TOPIC_AUDIT,
    TOPIC_RULES,
    TRANSACTION_TYPES,
    BalanceSnapshot,
    Contact,
    CustomerProfile,
    ErasureRequest,
    OfferResponse,
    RiskAssessment,
    TierOverride,
    Transaction,
)
from state.decisions import SEVERITIES, TIERS, Alert, Offer, TierChange, derive_event_id
from tests.schemas.conftest import EXAMPLES_DIR, SCHEMA_DIR, load_examples

ALL_TOPICS = (*INPUT_TOPICS, *OUTPUT_TOPICS, *TICK_TOPICS, TOPIC_AUDIT, TOPIC_RULES)
EVENT_TYPES = {
    "transactions": Transaction,
    "balances": BalanceSnapshot,
    "customer-profiles": CustomerProfile,
    "risk-assessments": RiskAssessment,
    "contacts": Contact,
    "offer-responses": OfferResponse,
    "tier-overrides": TierOverride,
    "erasure-requests": ErasureRequest,
}


def test_exactly_one_schema_and_one_example_file_per_topic() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(
        f"{t}.schema.json" for t in ALL_TOPICS
    )
    assert sorted(p.name for p in EXAMPLES_DIR.glob("*.json")) == sorted(
        f"{t}.json" for t in ALL_TOPICS
    )


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_schema_is_draft_2020_12(topic: str) -> None:
    schema = load_schema(topic)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_examples_also_pass_an_independent_2020_12_validator(topic: str) -> None:
    """fastjsonschema implements draft 7; a real 2020-12 validator must agree."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(load_schema(topic))
    for example in load_examples(topic):
        assert list(validator.iter_errors(example)) == []


@pytest.mark.parametrize("topic", INPUT_TOPICS)
def test_every_input_example_decodes_to_its_typed_event(decoder: Decoder, topic: str) -> None:
    examples = load_examples(topic)
    assert examples
    for example in examples:
        event = decoder.decode(topic, json.dumps(example).encode())
        assert not isinstance(event, DecodeError), (example, event)
        assert type(event) is EVENT_TYPES[topic]
        assert event.event_id == example["event_id"]
        assert event.customer_id == example["customer_id"]
        assert isinstance(event.ts, int)


def test_transaction_example_fields_map_to_the_right_attributes(decoder: Decoder) -> None:
    """Guards the positional construction in the decoder: every value lands where it
    belongs, with the documented conversions."""
    first, _second, third = load_examples("transactions")
    tx = decoder.decode("transactions", json.dumps(third).encode())
    assert tx == Transaction(
        event_id="tx-20240501-000003",
        customer_id="C000042",
        account_id="ACC-42-07",
        ts=1714557600500,  # 2024-05-01T12:00:00.5+02:00 = 10:00:00.500Z
        type="investment_buy",
        amount=Decimal("50000"),
        currency="EUR",
        channel="online",
        balance_after=Decimal("-120.5"),
        product_risk=4,
    )
    tx1 = decoder.decode("transactions", json.dumps(first).encode())
    assert isinstance(tx1, Transaction)
    assert (tx1.amount, tx1.balance_after, tx1.product_risk) == (
        Decimal("250000.00"),
        Decimal("312450.75"),
        None,
    )


def test_other_input_examples_map_to_the_right_attributes(decoder: Decoder) -> None:
    bal = decoder.decode("balances", orjson.dumps(load_examples("balances")[0]))
    assert bal == BalanceSnapshot(
        event_id="bal-20240501-42-01",
        customer_id="C000042",
        account_id="ACC-42-01",
        ts=1714607999000,
        product="deposit",
        balance=Decimal("312325.25"),
        currency="EUR",
    )
    prof = decoder.decode("customer-profiles", orjson.dumps(load_examples("customer-profiles")[0]))
    assert prof == CustomerProfile(
        event_id="prof-C000042-3",
        customer_id="C000042",
        ts=1714464000000,
        segment="retail",
        marketing_consent=True,
        birth_date="1971-05-02",
    )
    ra = decoder.decode("risk-assessments", orjson.dumps(load_examples("risk-assessments")[0]))
    assert ra == RiskAssessment(
        event_id="ra-C000042-2024-04",
        customer_id="C000042",
        ts=1713173400000,  # 10:30+01:00
        score=64,
        investment_experience_years=7.5,
    )


@pytest.mark.parametrize("topic", OUTPUT_TOPICS)
def test_every_output_example_validates(topic: str) -> None:
    examples = load_examples(topic)
    assert examples
    for example in examples:
        validate_output(topic, example)


@pytest.mark.parametrize(
    ("topic", "field", "values"),
    [
        ("transactions", "type", TRANSACTION_TYPES),
        ("transactions", "channel", CHANNELS),
        ("transactions", "product_risk", (*PRODUCT_RISKS, None)),
        ("balances", "product", PRODUCTS),
        ("customer-profiles", "segment", SEGMENTS),
        ("contacts", "channel", CONTACT_CHANNELS),
        ("contacts", "outcome", CONTACT_OUTCOMES),
        ("offer-responses", "outcome", OFFER_OUTCOMES),
        ("tier-changes", "to_tier", TIERS),
        ("tier-changes", "from_tier", (*TIERS, None)),
        ("offers", "tier", TIERS),
        ("alerts", "severity", SEVERITIES),
    ],
)
def test_schema_enums_match_the_code(topic: str, field: str, values: tuple[Any, ...]) -> None:
    assert tuple(load_schema(topic)["properties"][field]["enum"]) == tuple(values)


@pytest.mark.parametrize("topic", INPUT_TOPICS)
def test_input_schemas_allow_unknown_fields(decoder: Decoder, topic: str) -> None:
    example = dict(load_examples(topic)[0])
    example["x_new_field_from_a_future_producer"] = {"nested": [1, 2, 3]}
    assert not isinstance(decoder.decode(topic, orjson.dumps(example)), DecodeError)


# --- what the core emits ------------------------------------------------------------

RV = "r7"


def _tier_change(from_tier: str | None, to_tier: str, direction: str) -> TierChange:
    return TierChange(
        event_id=derive_event_id("C1", "tx-9", "tier_change", RV),
        customer_id="C1",
        ts=1714554902120,
        from_tier=from_tier,
        to_tier=to_tier,
        direction=direction,
        cause_event_id="tx-9",
        rules_version=RV,
        reason={"aum": "150000.00", "days": 3, "flag": True, "none": None, "ratio": 0.25},
    )


def test_decisions_to_record_satisfy_the_output_schemas() -> None:
    validate_output("tier-changes", _tier_change(None, "mass", "initial").to_record())
    validate_output("tier-changes", _tier_change("mass", "affluent", "upgrade").to_record())
    offer = Offer(
        event_id=derive_event_id("C1", "tx-9", "relationship_manager", RV),
        customer_id="C1",
        ts=0,
        kind="relationship_manager",
        tier="hnw",
        cause_event_id="tx-9",
        rules_version=RV,
    )
    validate_output("offers", offer.to_record())
    alert = Alert(
        event_id=derive_event_id("C1", "tx-9", "large_outflow", RV),
        customer_id="C1",
        ts=1714554902999,
        kind="large_outflow",
        severity="critical",
        cause_event_id="tx-9",
        rules_version=RV,
        reason={"outflow_eur": "250000"},
    )
    validate_output("alerts", alert.to_record())


def _record(**changes: Any) -> dict[str, Any]:
    record = _tier_change("mass", "affluent", "upgrade").to_record()
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_record(from_tier=None), "$.from_tier: must be a string"),
        (_tier_change("mass", "mass", "initial").to_record(), "$.from_tier: must be null"),
        (_record(to_tier="gold"), "$.to_tier: unknown value 'gold'"),
        (_record(direction="sideways"), "$.direction: unknown value"),
        (_record(event_id="not-a-derived-id"), "$.event_id: must be 32 lower-case hex"),
        (_record(ts="2024-05-01T09:15:02Z"), "$.ts: must be RFC 3339 UTC with milliseconds"),
        (_record(reason={"nested": {"a": 1}}), "$.reason.nested: must be a string or a number"),
        (_record(reason="because"), "$.reason: must be an object"),
        (_record(rules_version=""), "$.rules_version: must not be empty"),
        (_record(surprise=1), "$.surprise: unexpected field"),
        (
            {k: v for k, v in _record().items() if k != "cause_event_id"},
            "$.cause_event_id: required",
        ),
    ],
)
def test_validate_output_names_the_offending_field(record: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"^tier-changes: ") as info:
        validate_output("tier-changes", record)
    assert message in str(info.value)


def test_validate_output_rejects_unknown_kinds_of_shape_and_topics() -> None:
    alert = load_examples("alerts")[0]
    with pytest.raises(ValueError, match=r"\$\.kind: must be snake_case"):
        validate_output("alerts", {**alert, "kind": "Large Outflow"})
    with pytest.raises(ValueError, match=r"\$\.severity: unknown value 'fatal'"):
        validate_output("alerts", {**alert, "severity": "fatal"})
    with pytest.raises(ValueError, match="not an output topic"):
        validate_output("transactions", alert)
