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
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, Counter

from streams.audit import (
    ACTION_PROFILE_READ,
    AuditRecord,
    AuditUnavailable,
    new_event_id,
    now_ts,
)

log = logging.getLogger(__name__)

#: The client every attempt beyond ``DenialSummaries``' key limit is summed under.
OVERFLOW_CLIENT: Final = "*overflow*"


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


@dataclass
class _Tally:
    count: int = 0
    customers: set[int] = field(default_factory=set)
    customers_capped: bool = False


class DenialSummaries:
    """Denied and rate-limited attempts, summed per client and interval.

    Why not one durable record per denial, as before: every 401 then waited for an
    acknowledged Kafka write on the event loop that also processes events, so anyone
    could slow tiering down and fill the audit topic with made-up ids, at no cost to
    themselves. Now a denial costs a dictionary update on the request path and never
    waits for the producer; ``flush`` (a timer, every ``TIERSTREAM_AUDIT_SUMMARY_INTERVAL``
    seconds, and at shutdown) writes one record per (client, principal, role, result)
    with the count and the number of distinct customer ids named (ids themselves are
    not kept: only their hashes, at most ``max_customers`` per key, beyond which the
    count is a lower bound). Memory is bounded by ``max_keys``; beyond it, attempts
    are summed under the client ``*overflow*``.

    A failed flush keeps its tallies for the next one, so a broker hiccup loses
    nothing; a crash loses at most one interval of denial counts — denials serve no
    data, and served reads are still audited one by one before the answer.
    """

    def __init__(
        self,
        log: AuditLog,
        max_keys: int = 10_000,
        max_customers: int = 10_000,
    ) -> None:
        self._log = log
        self._max_keys = max_keys
        self._max_customers = max_customers
        self._tallies: dict[tuple[str, str | None, str | None, str], _Tally] = {}
        self._since = now_ts()

    def add(
        self,
        client: str,
        principal: str | None,
        role: str | None,
        result: str,
        customer_id: str | None,
    ) -> None:
        key = (client, principal, role, result)
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) >= self._max_keys:
                key = (OVERFLOW_CLIENT, None, None, result)
                tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = _Tally()
        tally.count += 1
        if customer_id is not None:
            if len(tally.customers) < self._max_customers:
                tally.customers.add(hash(customer_id))
            elif hash(customer_id) not in tally.customers:
                tally.customers_capped = True

    @property
    def pending(self) -> int:
        """Attempts counted and not yet written."""
        return sum(t.count for t in self._tallies.values())

    async def flush(self) -> int:
        """Write the interval's summaries; returns how many records were written.

        Runs off the request path. On failure the tallies stay (the next flush writes
        them, with the interval's start unchanged) and the error is counted and logged
        by ``AuditLog.record``.
        """
        if not self._tallies:
            self._since = now_ts()
            return 0
        taken, since = self._tallies, self._since
        self._tallies, self._since = {}, now_ts()
        records = [
            AuditRecord(
                new_event_id(),
                self._since,  # the end of the interval, the start of the next
                principal,
                role,
                ACTION_PROFILE_READ,
                None,
                result,
                count=t.count,
                customers=len(t.customers),
                client=client[:64],
                since=since,
            )
            for (client, principal, role, result), t in taken.items()
        ]
        try:
            await asyncio.gather(*(self._log.record(r) for r in records))
        except AuditUnavailable:
            # put them back (merged with what came in meanwhile); some may have been
            # written: a summary may then be counted twice, never lost
            for key, t in taken.items():
                mine = self._tallies.setdefault(key, _Tally())
                mine.count += t.count
                mine.customers |= t.customers
                mine.customers_capped |= t.customers_capped
            self._since = since
            return 0
        return len(records)
