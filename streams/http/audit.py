"""Audit trail of profile reads: one record per request on the ``audit`` topic.

Guarantee: a profile is never served without its audit record acknowledged by the
broker (acks=all, the worker's producer). ``AuditLog.record`` waits for the ack with
a deadline; when the write fails or times out it raises ``AuditUnavailable`` and the
HTTP view answers 503 instead of the profile. The record is written *before* the
response, so the trail can over-report (a record exists for a read whose response was
then lost, or arrived late after a 503) but never under-report.

Records are keyed by ``customer_id`` so one customer's trail stays ordered in one
partition. They hold who (token name and role, null when no valid token), when, which
customer and the result — never the profile itself and never the token.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter

from schemas.events import TOPIC_AUDIT

log = logging.getLogger(__name__)

#: Contract name of the audit topic (the topic prefix is prepended like for all topics).
AUDIT_TOPIC: Final = TOPIC_AUDIT
ACTION_PROFILE_READ: Final = "profile.read"
RESULTS: Final = ("ok", "not_found", "denied", "error")


class AuditUnavailable(RuntimeError):
    """The audit record could not be written; the audited action must not proceed."""


class _Sender(Protocol):
    """What AuditLog needs from a faust topic (``app.topic(...)``)."""

    async def send(self, *, key: Any = None, value: Any = None) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class AuditRecord:
    event_id: str
    ts: str
    principal: str | None
    role: str | None
    action: str
    customer_id: str
    result: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "ts": self.ts,
                "principal": self.principal,
                "role": self.role,
                "action": self.action,
                "customer_id": self.customer_id,
                "result": self.result,
            }
        )


def profile_read(
    customer_id: str, result: str, principal: str | None, role: str | None
) -> AuditRecord:
    """A new profile.read record stamped now (wall clock: an audit is about real time)."""
    if result not in RESULTS:
        raise ValueError(f"audit result must be one of {RESULTS}, not {result!r}")
    now = datetime.now(UTC)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return AuditRecord(
        event_id=uuid.uuid4().hex,
        ts=ts,
        principal=principal,
        role=role,
        action=ACTION_PROFILE_READ,
        customer_id=customer_id,
        result=result,
    )


class AuditLog:
    """Writes audit records through the worker's faust producer and waits for the ack."""

    def __init__(
        self, topic: _Sender, timeout_s: float, registry: CollectorRegistry | None = None
    ) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self.written = Counter(
            "tierstream_audit_records_total",
            "Audit records acknowledged by the broker, by result of the audited read.",
            ["result"],
            registry=registry,
        )
        self.failures = Counter(
            "tierstream_audit_write_failures_total",
            "Audit records that could not be written in time (the read was refused).",
            registry=registry,
        )

    async def record(self, rec: AuditRecord) -> None:
        """Write ``rec``; raise AuditUnavailable unless the broker acknowledged it in time."""
        try:
            await asyncio.wait_for(self._send(rec), self.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures.inc()
            # No customer id at warning level (personal data stays out of logs).
            log.error(
                "audit write failed (%s: %s); refusing the read", type(exc).__name__, exc or ""
            )
            raise AuditUnavailable("audit trail unavailable") from exc
        self.written.labels(rec.result).inc()

    async def _send(self, rec: AuditRecord) -> None:
        fut = await self.topic.send(key=rec.customer_id.encode("utf-8"), value=rec.to_json())
        await fut
