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
from streams.http.audit import AuditLog, DenialSummaries

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


def test_denials_are_summed_per_client_and_written_off_the_request_path() -> None:
    async def run() -> None:
        topic = _Topic(ack=True)
        summaries = DenialSummaries(AuditLog(topic, 1.0), max_keys=3)
        for i in range(500):  # a flood of made-up ids from one address: no write yet
            summaries.add("10.0.0.9", None, None, "denied", f"C{i % 50}")
        summaries.add("10.0.0.9", "grafana", "ops", "denied", "C1")
        summaries.add("10.0.0.7", "crm-1", "crm", "rate_limited", "C2")
        summaries.add("10.0.0.8", None, None, "denied", "C3")  # beyond max_keys
        assert topic.sent == [] and summaries.pending == 503
        assert await summaries.flush() == 4
        values = [json.loads(v) for _k, v in topic.sent]
        for v in values:
            jsonschema.validate(v, AUDIT_SCHEMA)
        by_client = {(v["client"], v["principal"], v["result"]): v for v in values}
        flood = by_client[("10.0.0.9", None, "denied")]
        assert (flood["count"], flood["customers"], flood["customer_id"]) == (500, 50, None)
        assert by_client[("10.0.0.7", "crm-1", "rate_limited")]["count"] == 1
        assert by_client[("*overflow*", None, "denied")]["count"] == 1
        assert {k for k, _v in topic.sent} == {b"10.0.0.9", b"10.0.0.7", b"*overflow*"}
        assert await summaries.flush() == 0  # nothing new

    asyncio.run(run())


def test_a_failed_summary_flush_keeps_the_counts_for_the_next_one() -> None:
    async def run() -> None:
        stuck = _Topic(ack=False)
        log = AuditLog(stuck, 0.05)
        summaries = DenialSummaries(log)
        summaries.add("10.0.0.9", None, None, "denied", "C1")
        assert await summaries.flush() == 0
        summaries.add("10.0.0.9", None, None, "denied", "C2")
        assert summaries.pending == 2
        log.topic = ok = _Topic(ack=True)
        assert await summaries.flush() == 1
        [(_key, value)] = ok.sent
        assert json.loads(value)["count"] == 2 and json.loads(value)["customers"] == 2

    asyncio.run(run())
