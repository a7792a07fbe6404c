"""Relationship managers' tier overrides: the effective tier a person sets, audited.

Why: the data can get a tier wrong -- a client's assets at another branch, a family
office, a payroll about to move -- and only a relationship manager can say so. An
override (topic ``tier-overrides``) makes its tier the customer's **effective** tier
(``state.tier``: the profile, offers, reviews and alerts all follow it) until it
expires (``until``) or is cleared (``tier`` null). Meanwhile the rules keep deciding
underneath (``state.rules_tier``, with the usual hysteresis) without emitting; when
the override ends the effective tier becomes what the rules say then, as a tier change
with the usual direction.

What comes out:

* setting an override that changes the effective tier: a tier change with direction
  ``override`` (``from_tier`` may be null for a customer the rules never tiered);
* its end -- cleared by a record, or expired (a time trigger due at ``until``, fired
  by the ticks like every timer; state/triggers.py) -- when the rules' tier differs:
  a tier change ``upgrade``/``downgrade`` whose ``cause_event_id`` is the clearing
  record's id or the expiry's trigger id ``override_expiry:<until ms>``;
* for every override record and every expiry: an audit record (topic ``audit``,
  action ``tier.override.set|clear|expire``, principal = ``set_by``).

Overrides are last writer wins by (event time, event id hash), like profiles: an
override record older than the newest one applied changes nothing (audit result
``superseded``). One whose ``until`` has already passed in the customer's event time
when it arrives applies and expires at once (result ``expired``). Neither setting nor
ending an override sends offers or raises alerts: a person made the decision.
"""

from __future__ import annotations

from typing import Any

from schemas.events import TierOverride
from schemas.timefmt import format_ts_utc
from state.customer import CustomerState
from state.decisions import TIER_RANK, TIERS, AuditRecord, Decision, TierChange, derive_event_id
from state.limits import SET_BY_CHARS
from state.money import fen_str
from state.rules import Rules
from state.tiers import TierEvaluation, decide, evaluate, tier_reason

__all__ = ["EXPIRY", "apply_override", "end_override", "expire", "expiry_trigger", "follow_rules"]

#: The time trigger kind of an override's expiry (state/triggers.py).
EXPIRY = "override_expiry"


def expiry_trigger(until_ms: int) -> str:
    """The stable id of an override's expiry: its trigger and its cause_event_id."""
    return f"{EXPIRY}:{until_ms}"


def follow_rules(state: CustomerState, ev: TierEvaluation, rules: Rules) -> None:
    """Under an override: the rules decide the tier they would give, silently."""
    to = decide(state.rules_tier, ev, rules)
    if to is not None:
        state.rules_tier = to


def invalid(ev: TierOverride, rules: Rules) -> tuple[str, str] | None:
    """Why the core cannot apply the record -- (field, reason) for its CoreError -- or
    None. The decoder holds the same (its ``until`` years are checked by the core)."""
    if ev.tier is not None and ev.tier not in TIER_RANK:
        return "tier", f"unknown tier '{ev.tier}'"
    if ev.until is not None and ev.until <= ev.ts:
        return "until", f"must be after ts ({ev.ts}), got {ev.until}"
    most = min(SET_BY_CHARS, rules.limits.max_field_chars)
    if type(ev.set_by) is not str or not 0 < len(ev.set_by) <= most:
        return "set_by", f"must be a string of 1 to {most} characters"
    if type(ev.reason) is not str or len(ev.reason) > rules.limits.max_field_chars:
        return "reason", f"must be a string of at most {rules.limits.max_field_chars}"
    return None


def apply_override(
    state: CustomerState, event: TierOverride, key: int, rules: Rules, out: list[Decision]
) -> None:
    """Apply a tier-overrides record (``key``: the event key of its id, for last writer
    wins)."""
    action = "tier.override.set" if event.tier is not None else "tier.override.clear"
    newer = event.ts > state.override_ts or (
        event.ts == state.override_ts and key > state.override_tie
    )
    if not newer:
        _audit(state, event.ts, event.event_id, event.event_id, event.set_by, action,
               "superseded", _facts(event), rules, out)  # fmt: skip
        return
    state.override_ts = event.ts
    state.override_tie = key
    if event.tier is None:
        before = state.tier
        if state.override_tier is not None:
            end_override(state, event.ts, event.event_id, event.event_id, "cleared", rules, out)
        _audit(state, event.ts, event.event_id, event.event_id, event.set_by, action, "ok",
               {**_facts(event), "tier_before": before or "", "tier_after": state.tier or ""},
               rules, out)  # fmt: skip
        return
    before = state.tier
    if state.override_tier is None:
        state.rules_tier = state.tier
    state.override_tier = event.tier
    state.override_until = event.until if event.until is not None else -1
    state.override_by = event.set_by
    if state.tier != event.tier:
        reason: dict[str, Any] = {
            "set_by": event.set_by,
            "until": format_ts_utc(event.until) if event.until is not None else "",
            "override_reason": event.reason,
            "rules_tier": state.rules_tier or "",
            "aum_cny": fen_str(state.aum_fen),
        }
        out.append(
            TierChange(
                event_id=derive_event_id(
                    state.customer_id, event.event_id, f"tier:{event.tier}", rules.version
                ),
                customer_id=state.customer_id,
                ts=event.ts,
                from_tier=state.tier,
                to_tier=event.tier,
                direction="override",
                cause_event_id=event.event_id,
                rules_version=rules.version,
                reason=reason,
            )
        )
        state.tier = event.tier
        state.tier_since = event.ts
    expired = event.until is not None and event.until <= state.timer_mark
    facts = {**_facts(event), "tier_before": before or "", "tier_after": state.tier or ""}
    _audit(state, event.ts, event.event_id, event.event_id, event.set_by, action,
           "expired" if expired else "ok", facts, rules, out)  # fmt: skip
    if expired:  # its time passed before it arrived: it ends now, as its expiry would
        assert event.until is not None
        expire(state, event.until, rules, out)


def expire(state: CustomerState, until_ms: int, rules: Rules, out: list[Decision]) -> None:
    """The override in effect reached its ``until``: the rules decide again."""
    trigger = expiry_trigger(until_ms)
    by, before = state.override_by, state.tier
    end_override(state, until_ms, trigger, trigger, "expired", rules, out)
    facts = {"tier_before": before or "", "tier_after": state.tier or "", "trigger": trigger}
    _audit(state, until_ms, trigger, trigger, by, "tier.override.expire", "ok", facts, rules, out)


def end_override(
    state: CustomerState,
    ts: int,
    cause_event_id: str,
    id_cause: str,
    how: str,
    rules: Rules,
    out: list[Decision],
) -> None:
    """End the override in effect: the effective tier becomes the rules' tier now (a
    tier change with the usual direction if it differs)."""
    ev = evaluate(state, rules)
    base = state.rules_tier
    to = decide(base, ev, rules) or base or TIERS[ev.rank]
    overridden = state.override_tier
    state.override_tier = None
    state.override_until = -1
    state.override_by = ""
    state.rules_tier = None
    if to == state.tier:
        return
    from_tier = state.tier
    assert from_tier is not None and overridden is not None
    direction = "upgrade" if TIER_RANK[to] > TIER_RANK[from_tier] else "downgrade"
    reason: dict[str, Any] = {"override_ended": how, **tier_reason(state, ev, to, rules)}
    if how == "expired":
        reason["trigger"] = cause_event_id
    out.append(
        TierChange(
            event_id=derive_event_id(state.customer_id, id_cause, f"tier:{to}", rules.version),
            customer_id=state.customer_id,
            ts=ts,
            from_tier=from_tier,
            to_tier=to,
            direction=direction,
            cause_event_id=cause_event_id,
            rules_version=rules.version,
            reason=reason,
        )
    )
    state.tier = to
    state.tier_since = ts


def _facts(event: TierOverride) -> dict[str, Any]:
    return {
        "tier": event.tier or "",
        "until": format_ts_utc(event.until) if event.until is not None else "",
        "override_reason": event.reason,
    }


def _audit(
    state: CustomerState,
    ts: int,
    cause_event_id: str,
    id_cause: str,
    principal: str,
    action: str,
    result: str,
    reason: dict[str, Any],
    rules: Rules,
    out: list[Decision],
) -> None:
    out.append(
        AuditRecord(
            event_id=derive_event_id(state.customer_id, id_cause, f"audit:{action}", rules.version),
            customer_id=state.customer_id,
            ts=ts,
            principal=principal,
            action=action,
            result=result,
            cause_event_id=cause_event_id,
            rules_version=rules.version,
            reason=reason,
        )
    )
