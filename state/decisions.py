"""Decisions the core emits: tier changes, offers and alerts.

Each decision carries a deterministic ``event_id`` derived from its cause (customer,
cause event, kind, rules version), so replaying the same input reproduces the same ids
and downstream consumers can deduplicate. ``to_record()`` gives the JSON-ready dict
that goes on the output topic (see schemas/json/*.schema.json); money and ratios in
``reason`` are strings so they stay exact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from schemas.timefmt import format_ts_utc

TIERS = ("mass", "affluent", "hnw", "private")
#: ``direction`` of a tier change: the first tier, a move up, a move down, a
#: relationship manager's override (state/overrides.py).
DIRECTIONS = ("initial", "upgrade", "downgrade", "override")
TIER_RANK = {t: i for i, t in enumerate(TIERS)}
SEVERITIES = ("info", "warning", "critical")
#: ``purpose`` of an offer or alert: marketing (needs marketing consent) or service (a
#: contact the bank owes the customer: needs none, but respects a service opt-out).
PURPOSES = ("marketing", "service")


def derive_event_id(customer_id: str, cause_event_id: str, kind: str, rules_version: str) -> str:
    """A stable id for an output: the same cause always gives the same id.

    32 hex chars of SHA-256 over the NUL-joined parts (NUL cannot appear in JSON
    strings we accept, so the join is unambiguous).
    """
    raw = "\x00".join((customer_id, cause_event_id, kind, rules_version)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class TierChange:
    topic: ClassVar[str] = "tier-changes"

    event_id: str
    customer_id: str
    ts: int
    from_tier: str | None
    to_tier: str
    direction: str  # one of DIRECTIONS
    cause_event_id: str
    rules_version: str
    reason: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "ts": format_ts_utc(self.ts),
            "from_tier": self.from_tier,
            "to_tier": self.to_tier,
            "direction": self.direction,
            "cause_event_id": self.cause_event_id,
            "rules_version": self.rules_version,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Offer:
    topic: ClassVar[str] = "offers"

    event_id: str
    customer_id: str
    ts: int
    kind: str
    tier: str
    cause_event_id: str
    rules_version: str
    reason: dict[str, Any] = field(default_factory=dict)
    purpose: str = "marketing"  # one of PURPOSES

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "ts": format_ts_utc(self.ts),
            "kind": self.kind,
            "tier": self.tier,
            "purpose": self.purpose,
            "cause_event_id": self.cause_event_id,
            "rules_version": self.rules_version,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Alert:
    topic: ClassVar[str] = "alerts"

    event_id: str
    customer_id: str
    ts: int
    kind: str
    severity: str  # info | warning | critical
    cause_event_id: str
    rules_version: str
    reason: dict[str, Any] = field(default_factory=dict)
    purpose: str = "service"  # every alert is for the bank's staff: never marketing

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "ts": format_ts_utc(self.ts),
            "kind": self.kind,
            "severity": self.severity,
            "purpose": self.purpose,
            "cause_event_id": self.cause_event_id,
            "rules_version": self.rules_version,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit-trail record the core writes (topic ``audit``, beside the HTTP API's
    profile reads): every tier override set, cleared or expired (state/overrides.py).
    ``principal`` is who set the override (``set_by``)."""

    topic: ClassVar[str] = "audit"

    event_id: str
    customer_id: str
    ts: int
    principal: str
    action: str  # one of AUDIT_ACTIONS
    result: str  # ok | superseded | expired
    cause_event_id: str
    rules_version: str
    reason: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "ts": format_ts_utc(self.ts),
            "principal": self.principal,
            "role": None,
            "action": self.action,
            "customer_id": self.customer_id,
            "result": self.result,
            "cause_event_id": self.cause_event_id,
            "rules_version": self.rules_version,
            "reason": self.reason,
        }


#: ``action`` of the audit records the core writes.
AUDIT_ACTIONS = ("tier.override.set", "tier.override.clear", "tier.override.expire")

Decision = TierChange | Offer | Alert | AuditRecord
