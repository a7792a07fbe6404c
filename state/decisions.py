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
from datetime import UTC, datetime
from typing import Any, ClassVar

TIERS = ("mass", "affluent", "hnw", "private")
TIER_RANK = {t: i for i, t in enumerate(TIERS)}
SEVERITIES = ("info", "warning", "critical")


def derive_event_id(customer_id: str, cause_event_id: str, kind: str, rules_version: str) -> str:
    """A stable id for an output: the same cause always gives the same id.

    32 hex chars of SHA-256 over the NUL-joined parts (NUL cannot appear in JSON
    strings we accept, so the join is unambiguous).
    """
    raw = "\x00".join((customer_id, cause_event_id, kind, rules_version)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


#: format_ts memo: epoch second -> "YYYY-MM-DDTHH:MM:SS." and UTC day -> "YYYY-MM-DD".
#: strftime costs ~3 µs and runs for every decision and every profile; both are pure
#: functions of the second / day, so a bounded dict lookup returns exactly what a fresh
#: evaluation would.
_TS_SECONDS: dict[int, str] = {}
_TS_DAYS: dict[int, str] = {}
_TS_CACHE_MAX = 16_384  # ~4.5 h of distinct seconds; a few MB at most


def _format_ts_slow(ts_ms: int) -> str:
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def format_ts(ts_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with millisecond precision."""
    if type(ts_ms) is not int:
        return _format_ts_slow(ts_ms)
    sec, ms = divmod(ts_ms, 1000)
    prefix = _TS_SECONDS.get(sec)
    if prefix is None:
        # UTC has no leap seconds and no offset changes: the time of day is arithmetic
        # on the second, only the date needs the calendar.
        day, s = divmod(sec, 86_400)
        date_text = _TS_DAYS.get(day)
        if date_text is None:
            full = _format_ts_slow(ts_ms)  # raises for out-of-range times, as always
            date_text = full[: full.index("T")]  # %Y is not zero-padded below 1000
            if len(_TS_DAYS) >= _TS_CACHE_MAX:
                _TS_DAYS.clear()
            _TS_DAYS[day] = date_text
        prefix = f"{date_text}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}."
        if len(_TS_SECONDS) >= _TS_CACHE_MAX:
            _TS_SECONDS.clear()
        _TS_SECONDS[sec] = prefix
    return f"{prefix}{ms:03d}Z"


@dataclass(frozen=True, slots=True)
class TierChange:
    topic: ClassVar[str] = "tier-changes"

    event_id: str
    customer_id: str
    ts: int
    from_tier: str | None
    to_tier: str
    direction: str  # initial | upgrade | downgrade
    cause_event_id: str
    rules_version: str
    reason: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "ts": format_ts(self.ts),
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
            "ts": format_ts(self.ts),
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
            "ts": format_ts(self.ts),
            "kind": self.kind,
            "severity": self.severity,
            "cause_event_id": self.cause_event_id,
            "rules_version": self.rules_version,
            "reason": self.reason,
        }


Decision = TierChange | Offer | Alert
