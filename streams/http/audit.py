"""The HTTP API's audit writer: a profile read is answered only once its record is acked.

Guarantee: a profile is never served without its audit record acknowledged by the
broker (acks=all, the worker's producer). ``AuditLog.record`` waits for the ack with
a deadline; when the write fails or times out it raises ``AuditUnavailable`` and the
HTTP view answers 503 instead of the profile. The record is written *before* the
response, so the trail can over-report (a record exists for a read whose response was
then lost, or arrived late after a 503) but never under-report. The records
themselves (fields, keys, builders) are streams/audit.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter

from streams.audit import AuditRecord, AuditUnavailable

log = logging.getLogger(__name__)


class _Sender(Protocol):
    """What AuditLog needs from a faust topic (``app.topic(...)``)."""

    async def send(self, *, key: Any = None, value: Any = None) -> Awaitable[Any]: ...


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
        fut = await self.topic.send(key=rec.key, value=rec.to_json())
        await fut
