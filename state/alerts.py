"""Alerts for relationship managers and risk: each with a severity and its numbers.

Why numbers as strings in ``reason``: money must stay exact on the wire and a reader
must be able to re-check the rule from the alert alone (amount, AUM, ratio, floor).
Alert kinds that describe a condition rather than one event (aum_drop, churn_risk)
have a cooldown so a customer in that condition is not re-alerted on every event.
"""

from __future__ import annotations

from typing import Any

from schemas.events import InputEvent, Transaction
from schemas.timefmt import format_ts_utc
from state.customer import CustomerState
from state.decisions import TIER_RANK, Alert, derive_event_id
from state.lifetime import customer_p_alive, history
from state.money import fen_str, ratio_str
from state.risk import valid_risk_type
from state.rules import DAY_MS, Rules

#: Alerts that ask staff to contact the customer (suitability warnings, dormancy
#: outreach, slipping RFM): when the customer opted out of service contacts they
#: still go out -- the bank must know -- with ``reason.service_contact_opt_out`` "true".
CONTACT_ALERT_KINDS = frozenset({"suitability_mismatch", "dormant_high_value", "rfm_slipping"})
_AFFLUENT = TIER_RANK["affluent"]
_HNW = TIER_RANK["hnw"]


def emit_alert(
    state: CustomerState,
    kind: str,
    severity: str,
    ts: int,
    cause_event_id: str,
    id_cause: str,
    rules: Rules,
    reason: dict[str, Any],
) -> Alert | None:
    """Emit ``kind`` at event time ``ts`` unless its cooldown suppresses it; the id
    derives from ``id_cause`` (the cause event's id or a timer's stable trigger id)."""
    last = state.last_alert.get(kind)
    cooldown = rules.alert_cooldown_days[kind] * DAY_MS
    if cooldown and last is not None and ts - last < cooldown:
        return None
    if cooldown:
        state.last_alert[kind] = max(ts, last) if last is not None else ts
    if state.service_opt_out and kind in CONTACT_ALERT_KINDS:
        reason = {**reason, "service_contact_opt_out": "true"}
    return Alert(
        event_id=derive_event_id(state.customer_id, id_cause, f"alert:{kind}", rules.version),
        customer_id=state.customer_id,
        ts=ts,
        kind=kind,
        severity=severity,
        cause_event_id=cause_event_id,
        rules_version=rules.version,
        reason=reason,
    )


def _alert(
    state: CustomerState,
    kind: str,
    severity: str,
    event: InputEvent,
    rules: Rules,
    reason: dict[str, Any],
) -> Alert | None:
    return emit_alert(
        state, kind, severity, event.ts, event.event_id, event.event_id, rules, reason
    )


def _rank(tier: str | None) -> int:
    return TIER_RANK[tier] if tier is not None else -1


def large_outflow(
    state: CustomerState,
    tx: Transaction,
    amount_fen: int,
    aum_before_fen: int,
    tier_before: str | None,
    rules: Rules,
) -> Alert | None:
    """One debit >= ratio x the AUM before it, or (hnw/private) >= the absolute amount."""
    by_ratio = aum_before_fen > 0 and amount_fen >= rules.large_outflow_ratio * aum_before_fen
    high_value = _rank(tier_before) >= _HNW
    by_amount = high_value and amount_fen >= rules.large_outflow_amount_fen
    if not (by_ratio or by_amount):
        return None
    reason = {
        "amount_cny": fen_str(amount_fen),
        "aum_before_cny": fen_str(aum_before_fen),
        "ratio": ratio_str(amount_fen, aum_before_fen),
        "ratio_threshold": str(rules.large_outflow_ratio),
        "amount_threshold_cny": str(rules.large_outflow_amount_cny),
        "type": tx.type,
        "tier": tier_before or "",
        "rule": "ratio" if by_ratio else "amount",
    }
    severity = "critical" if high_value else "warning"
    return _alert(state, "large_outflow", severity, tx, rules, reason)


def aum_drop(
    state: CustomerState, event: InputEvent, tier_before: str | None, rules: Rules
) -> Alert | None:
    """AUM down >= ratio from the highest AUM of the last N days (affluent and above)."""
    if _rank(tier_before) < _AFFLUENT:
        return None
    start = state.day - rules.aum_drop_days + 1
    peak = 0
    carry: int | None = None
    samples = state.aum_samples  # [day, high, close, ...] by day ascending
    for i in range(0, len(samples), 3):
        if samples[i] >= start:
            if samples[i + 1] > peak:
                peak = samples[i + 1]
        else:
            carry = samples[i + 2]  # the newest close before the period
    if carry is not None:  # the level held when the period began
        peak = max(peak, carry)
    now = state.aum_fen
    num, den = rules.aum_drop_keep  # now <= peak x (1 - ratio), in integers
    if peak <= 0 or now * den > peak * num:
        return None
    cnum, cden = rules.aum_drop_critical_keep
    critical = now * cden <= peak * cnum
    reason = {
        "aum_cny": fen_str(now),
        "peak_aum_cny": fen_str(peak),
        "drop_ratio": ratio_str(peak - now, peak),
        "threshold": str(rules.aum_drop_ratio),
        "days": str(rules.aum_drop_days),
        "tier": tier_before or "",
    }
    return _alert(state, "aum_drop", "critical" if critical else "warning", event, rules, reason)


def high_value_downgrade(
    state: CustomerState,
    ts: int,
    cause: str,
    from_tier: str,
    to_tier: str,
    basis: str,
    rules: Rules,
) -> Alert | None:
    """Leaving hnw or private: critical from private, warning from hnw. ``cause``: the
    input event's id, or the trigger id of a re-evaluation (state/tier_policy.py)."""
    if TIER_RANK[from_tier] < _HNW or TIER_RANK[to_tier] >= TIER_RANK[from_tier]:
        return None
    severity = "critical" if from_tier == "private" else "warning"
    reason = {
        "from_tier": from_tier,
        "to_tier": to_tier,
        "basis_cny": basis,
        "aum_cny": fen_str(state.aum_fen),
    }
    return emit_alert(state, "high_value_downgrade", severity, ts, cause, cause, rules, reason)


def suitability_mismatch(state: CustomerState, tx: Transaction, rules: Rules) -> Alert | None:
    """investment_buy above the customer's risk type (critical), or with no valid
    assessment at the time of the buy (warning)."""
    rtype = valid_risk_type(state, tx.ts, rules)
    prisk = tx.product_risk
    product = f"R{prisk}" if prisk is not None else ""
    if rtype is None:
        reason = {
            "product_risk": product,
            "risk_type": "",
            "problem": "no_valid_assessment",
            "assessed_at": format_ts_utc(state.assessed_ts) if state.assessed_ts >= 0 else "",
        }
        return _alert(state, "suitability_mismatch", "warning", tx, rules, reason)
    if prisk is None or prisk <= int(rtype[1]):
        return None
    reason = {"product_risk": product, "risk_type": rtype, "problem": "risk_exceeds_type"}
    return _alert(state, "suitability_mismatch", "critical", tx, rules, reason)


def churn_risk(state: CustomerState, event: InputEvent, rules: Rules) -> Alert | None:
    """P(alive) below the threshold for affluent and above; checked once per local day,
    and not on a day the customer transacted (they are demonstrably active then, and
    P(alive) is at its maximum -- skipping it keeps the transaction hot path cheap)."""
    rank = _rank(state.tier)
    if rank < _AFFLUENT or state.churn_day == state.day or state.tx_last_day == state.day:
        return None
    state.churn_day = state.day
    pa = customer_p_alive(state, rules)
    if pa is None or pa >= rules.churn_p_alive:
        return None
    h = history(state)
    assert h is not None
    reason = {
        "p_alive": f"{pa:.4f}",
        "threshold": str(rules.churn_p_alive),
        "x": str(h[0]),
        "t_x_days": str(h[1]),
        "T_days": str(h[2]),
        "tier": state.tier or "",
    }
    severity = "critical" if rank >= _HNW else "warning"
    return _alert(state, "churn_risk", severity, event, rules, reason)
