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
#: ``direction`` of a tier change: the first tier, a move up, a move down.
DIRECTIONS = ("initial", "upgrade", "downgrade")
TIER_RANK = {t: i for i, t in enumerate(TIERS)}
SEVERITIES = ("info", "warning", "critical")


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

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "ts": format_ts_utc(self.ts),
            "kind": self.kind,
            "tier": self.tier,
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

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "ts": format_ts_utc(self.ts),
            "kind": self.kind,
            "severity": self.severity,
            "cause_event_id": self.cause_event_id,
            "rules_version": self.rules_version,
            "reason": self.reason,
        }


Decision = TierChange | Offer | Alert
