"""Audit records of profile reads: their schema, and no read without an acknowledged record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streams.audit import (
    ACTION_PROFILE_READ,
    AuditRecord,
    AuditUnavailable,
    profile_read,
    profiles_export,
)
from streams.http.audit import AuditLog

REPO = Path(__file__).resolve().parents[3]
AUDIT_SCHEMA = json.loads((REPO / "schemas" / "json" / "audit.schema.json").read_text())


def test_audit_records_match_the_schema() -> None:
    for result in ("ok", "not_found", "denied", "error"):
        rec = profile_read("C000042", result, "crm-frontend", "crm")
        jsonschema.validate(json.loads(rec.to_json()), AUDIT_SCHEMA)
    rec = profile_read("C1", "denied", None, None)
    jsonschema.validate(json.loads(rec.to_json()), AUDIT_SCHEMA)
    examples = json.loads((REPO / "schemas" / "examples" / "audit.json").read_text())
    for example in examples:
        jsonschema.validate(example, AUDIT_SCHEMA)
    with pytest.raises(ValueError):
        profile_read("C1", "maybe", None, None)
    export = json.loads(profiles_export(5000, "alice@jump-01", "cli").to_json())
    jsonschema.validate(export, AUDIT_SCHEMA)
    assert export["customer_id"] is None and export["count"] == 5000


def test_the_schema_refuses_records_that_name_too_little_or_too_much() -> None:
    read = json.loads(profile_read("C1", "ok", "a", "crm").to_json())
    with pytest.raises(jsonschema.ValidationError):  # a single read names its customer
        jsonschema.validate({**read, "customer_id": None}, AUDIT_SCHEMA)
    summary = AuditRecord(
        "0" * 32,
        read["ts"],
        None,
        None,
        ACTION_PROFILE_READ,
        None,
        "denied",
        count=3,
        customers=2,
        client="10.0.0.1",
        since=read["ts"],
    )
    jsonschema.validate(summary.to_dict(), AUDIT_SCHEMA)
    assert summary.key == b"10.0.0.1"
    with pytest.raises(jsonschema.ValidationError):  # a summary names no customer
        jsonschema.validate({**summary.to_dict(), "customer_id": "C1"}, AUDIT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):  # ... and says from whom
        jsonschema.validate(
            {k: v for k, v in summary.to_dict().items() if k != "client"}, AUDIT_SCHEMA
        )
    with pytest.raises(jsonschema.ValidationError):  # served reads are never summed
        jsonschema.validate({**summary.to_dict(), "result": "ok"}, AUDIT_SCHEMA)


class _Topic:
    """A stand-in for a faust topic: records what was sent, or never acknowledges."""

    def __init__(self, ack: bool) -> None:
        self.ack = ack
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, *, key: Any = None, value: Any = None) -> asyncio.Future[None]:
        self.sent.append((key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.ack:
            fut.set_result(None)
        return fut


def test_audit_waits_for_the_ack_and_refuses_when_it_does_not_come() -> None:
    async def run() -> None:
        ok = _Topic(ack=True)
        await AuditLog(ok, 1.0).record(profile_read("C1", "ok", "a", "crm"))
        assert ok.sent and ok.sent[0][0] == b"C1"
        stuck = _Topic(ack=False)
        with pytest.raises(AuditUnavailable):
            await AuditLog(stuck, 0.05).record(profile_read("C1", "ok", "a", "crm"))

    asyncio.run(run())
