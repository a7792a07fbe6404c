"""Offers: next-best-action triggers, gated by marketing consent and a per-kind cadence.

Why the gates live here and not downstream: an offer that must not be sent should not
be emitted at all (consent is a legal requirement), and the cadence (at most one offer
of a kind per customer per N days, in event time) must be deterministic on replay.
An offer withheld for lack of consent is dropped, not deferred.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

from schemas.events import InputEvent
from schemas.timefmt import format_ts_utc
from state import responses
from state.customer import CustomerState
from state.decisions import TIER_RANK, Offer, derive_event_id
from state.recommend import product_ids
from state.risk import valid_risk_type
from state.rules import Rules
from state.windows import CHANNEL_INDEX

#: tier entered -> offer kind
TIER_OFFERS = {
    "affluent": "wealth_products",
    "hnw": "relationship_manager",
    "private": "private_banking_invitation",
}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_BRANCH = CHANNEL_INDEX["branch"]
_ATM = CHANNEL_INDEX["atm"]


def local_date(day: int) -> date:
    return date.fromordinal(day + _EPOCH_ORDINAL)


def age_on(birth: date, on: date) -> int:
    """Completed years of age on ``on`` (a Feb 29 birthday counts from Mar 1)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def birthday_in(year: int, birth: date) -> date:
    """The birthday in ``year``; Feb 29 falls on Feb 28 in non-leap years."""
    try:
        return birth.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def emit(
    state: CustomerState,
    kind: str,
    ts: int,
    cause_event_id: str,
    id_cause: str,
    rules: Rules,
    reason: dict[str, Any],
) -> Offer | None:
    """Emit ``kind`` at event time ``ts`` if consent is on record, the kind's cap allows
    it and the customer has not declined the kind lately (state/responses.py). The
    event_id derives from ``id_cause`` (the cause event's id, or a timer's stable
    trigger id), so a replay reproduces it. The offer is remembered, so a response
    naming it can be attributed."""
    if not state.consent:
        return None
    last = state.last_offer.get(kind)
    if last is not None and ts - last < rules.offer_cooldown_ms(kind):
        return None
    if state.offer_outcomes and responses.declined_recently(state, kind, ts, rules):
        return None
    if last is None:
        # A new entry: first drop the caps of kinds these rules no longer emit (a
        # campaign kind of earlier rules), so the map is bounded by the rules
        # (state/limits.py).
        for gone in [k for k in state.last_offer if k not in rules.offer_kinds]:
            del state.last_offer[gone]
    state.last_offer[kind] = max(ts, last) if last is not None else ts
    offer = Offer(
        event_id=derive_event_id(state.customer_id, id_cause, f"offer:{kind}", rules.version),
        customer_id=state.customer_id,
        ts=ts,
        kind=kind,
        tier=state.tier or "mass",
        cause_event_id=cause_event_id,
        rules_version=rules.version,
        reason=reason,
    )
    responses.remember_offer(state, offer, rules)
    return offer


def _offer(
    state: CustomerState,
    kind: str,
    event: InputEvent,
    rules: Rules,
    reason: dict[str, Any],
) -> Offer | None:
    """Emit ``kind`` for an input event (its id and time are the cause)."""
    return emit(state, kind, event.ts, event.event_id, event.event_id, rules, reason)


def recommending(
    state: CustomerState,
    kind: str,
    ts: int,
    cause_event_id: str,
    id_cause: str,
    rules: Rules,
    reason: dict[str, Any],
    only: Collection[str] | None = None,
) -> list[Offer]:
    """An offer that recommends products: ``reason["products"]`` is the ranked list of
    suitable ids (comma-joined; see state/recommend.py). Without a valid assessment only
    R1 products qualify and ``risk_assessment_due`` goes out with it (cap and consent
    permitting)."""
    rtype = valid_risk_type(state, ts, rules)
    reason = {**reason, "products": product_ids(state, rules, ts, only), "risk_type": rtype or ""}
    o = emit(state, kind, ts, cause_event_id, id_cause, rules, reason)
    if o is None:
        return []
    out = [o]
    if rtype is None:
        due = emit(
            state,
            "risk_assessment_due",
            ts,
            cause_event_id,
            id_cause,
            rules,
            {"trigger": "recommendation", "for_offer": kind, **assessment_facts(state)},
        )
        if due is not None:
            out.append(due)
    return out


def assessment_facts(state: CustomerState) -> dict[str, Any]:
    """What a risk_assessment_due offer says about the assessment on record."""
    if state.assessed_ts < 0:
        return {"assessed_at": "", "risk_type": ""}
    return {"assessed_at": format_ts_utc(state.assessed_ts), "risk_type": state.risk_type or ""}


def tier_entry_offers(
    state: CustomerState, to_tier: str, ts: int, cause: str, rules: Rules
) -> list[Offer]:
    """Offers for entering ``to_tier`` (upgrade or initial tier; not on a downgrade),
    at ``ts``; ``cause`` is the input event's id or the trigger id of a re-evaluation
    (state/tier_policy.py), and their ids derive from it."""
    out: list[Offer] = []
    kind = TIER_OFFERS.get(to_tier)
    if kind is not None:
        out.extend(recommending(state, kind, ts, cause, cause, rules, {"entered_tier": to_tier}))
    if state.segment == "sme" and TIER_RANK[to_tier] >= TIER_RANK["affluent"]:
        reason = {"entered_tier": to_tier, "segment": "sme"}
        o = emit(state, "sme_credit", ts, cause, cause, rules, reason)
        if o is not None:
            out.append(o)
    return out


def digital_banking_offer(
    state: CustomerState, event: InputEvent, ev_day: int, rules: Rules
) -> Offer | None:
    """Young customers who mostly bank at branches/ATMs get the digital-banking nudge."""
    w = state.windows
    if w.count < rules.digital_banking_min_transactions or state.birth_date is None:
        return None
    if not state.consent:
        return None
    offline = w.channels[_BRANCH] + w.channels[_ATM]
    if offline <= rules.digital_banking_share_over * w.count:
        return None
    age = age_on(date.fromisoformat(state.birth_date), local_date(ev_day))
    if age >= rules.digital_banking_max_age:
        return None
    reason = {
        "age": str(age),
        "branch_atm_transactions": str(offline),
        "window_transactions": str(w.count),
        "window_days": str(rules.window_days),
    }
    return _offer(state, "digital_banking", event, rules, reason)


def assessment_due_on_buy(state: CustomerState, tx: InputEvent, rules: Rules) -> Offer | None:
    """An investment buy without a valid assessment (expired or never made): the
    customer is due a new risk assessment."""
    if valid_risk_type(state, tx.ts, rules) is not None:
        return None
    reason = {"trigger": "investment_buy", **assessment_facts(state)}
    return _offer(state, "risk_assessment_due", tx, rules, reason)
