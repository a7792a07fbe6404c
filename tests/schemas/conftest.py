"""Shared helpers for the schema tests: one valid payload per input topic, and a way to
derive broken variants from it so each bad-input case changes exactly one thing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas.decoder import Decoder

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schemas" / "json"
EXAMPLES_DIR = ROOT / "schemas" / "examples"

DROP = object()  # marks a field to delete in make_payload()

VALID: dict[str, dict[str, Any]] = {
    "transactions": {
        "event_id": "tx-1",
        "customer_id": "C1",
        "account_id": "A1",
        "ts": "2024-05-01T09:15:02.120Z",
        "type": "deposit",
        "amount": "250.00",
        "currency": "EUR",
        "channel": "mobile",
    },
    "balances": {
        "event_id": "bal-1",
        "customer_id": "C1",
        "account_id": "A1",
        "ts": "2024-05-01T23:59:59Z",
        "product": "fund",
        "balance": "1000.50",
        "currency": "CHF",
    },
    "customer-profiles": {
        "event_id": "prof-1",
        "customer_id": "C1",
        "ts": "2024-05-01T08:00:00Z",
        "segment": "retail",
        "marketing_consent": True,
    },
    "risk-assessments": {
        "event_id": "ra-1",
        "customer_id": "C1",
        "ts": "2024-05-01T08:00:00Z",
        "score": 55,
        "investment_experience_years": 3,
    },
    "contacts": {
        "event_id": "crm-1",
        "customer_id": "C1",
        "ts": "2024-05-01T08:00:00Z",
        "channel": "phone",
        "outcome": "reached",
    },
    "offer-responses": {
        "event_id": "resp-1",
        "customer_id": "C1",
        "ts": "2024-05-03T08:00:00Z",
        "offer_event_id": "0123456789abcdef0123456789abcdef",
        "outcome": "accepted",
    },
    "tier-overrides": {
        "event_id": "ovr-1",
        "customer_id": "C1",
        "ts": "2024-05-01T08:00:00Z",
        "tier": "hnw",
        "until": "2024-08-01T00:00:00+08:00",
        "set_by": "rm-7",
        "reason": "assets at another branch",
    },
    "erasure-requests": {
        "event_id": "erase-1",
        "customer_id": "C1",
        "ts": "2024-05-01T08:00:00Z",
        "requested_by": "privacy-office",
        "reason": "DSR-1",
    },
}


def make_payload(topic: str, **changes: Any) -> bytes:
    """The valid payload of ``topic`` with ``changes`` applied (DROP deletes a field)."""
    doc = dict(VALID[topic])
    for key, value in changes.items():
        if value is DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc, separators=(",", ":")).encode()  # stdlib: ints > 64 bit too


def load_examples(topic: str) -> list[dict[str, Any]]:
    data = json.loads((EXAMPLES_DIR / f"{topic}.json").read_text())
    return data if isinstance(data, list) else [data]


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return Decoder(max_future_skew_ms=5 * 60 * 1000)
