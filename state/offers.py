"""Offers: next-best-action triggers, gated by consent and a per-kind cadence.

Why the gates live here and not downstream: an offer that must not be sent should not
be emitted at all (consent is a legal requirement), and the cadence (at most one offer
of a kind per customer per N days, in event time) must be deterministic on replay.
An offer withheld for lack of consent is dropped, not deferred.

Two kinds of consent (issue 22): a **marketing** offer needs the profile's
``marketing_consent``; a **service** contact -- a relationship review, a risk
assessment renewal -- is something the bank owes the customer, so it needs no
marketing consent, but it respects the profile's ``service_contact_opt_out``. Every
offer says which it is (``purpose``).
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
from state.money import fen_str, ratio_str
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
#: Offer kinds that are service contacts (every other kind, campaigns included, is
#: marketing).
SERVICE_OFFER_KINDS = frozenset({"relationship_review", "risk_assessment_due"})
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


def may_contact(state: CustomerState, kind: str) -> bool:
    """Whether the customer may be sent an offer of ``kind``: a service contact unless
    they opted out of service contacts, anything else only with marketing consent."""
    if kind in SERVICE_OFFER_KINDS:
        return not state.service_opt_out
    return state.consent


def emit(
    state: CustomerState,
    kind: str,
    ts: int,
    cause_event_id: str,
    id_cause: str,
    rules: Rules,
    reason: dict[str, Any],
) -> Offer | None:
    """Emit ``kind`` at event time ``ts`` if the customer may be contacted for it
    (``may_contact``), the kind's cap allows it and the customer has not declined the
    kind lately (state/responses.py). The event_id derives from ``id_cause`` (the cause
    event's id, or a timer's stable trigger id), so a replay reproduces it. The offer
    is remembered, so a response naming it can be attributed."""
    if not may_contact(state, kind):
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
        purpose="service" if kind in SERVICE_OFFER_KINDS else "marketing",
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


def channel_offers(
    state: CustomerState, event: InputEvent, ev_day: int, rules: Rules
) -> list[Offer]:
    """The offers that follow how and for how much the customer transacts (channel
    shares and the average transaction of the window, as in the profile's
    ``channel_shares`` and ``avg_amount_cny``): the digital-banking nudge and priority
    branch service. Checked on every counted transaction."""
    w = state.windows
    if not state.consent or w.count == 0:
        return []
    out = []
    o = digital_banking_offer(state, event, ev_day, rules)
    if o is not None:
        out.append(o)
    o = branch_priority_offer(state, event, rules)
    if o is not None:
        out.append(o)
    return out


def digital_banking_offer(
    state: CustomerState, event: InputEvent, ev_day: int, rules: Rules
) -> Offer | None:
    """Young customers who mostly bank at branches and ATMs, for everyday amounts, get
    the digital-banking nudge: at least ``digital_banking_min_transactions`` in the
    window, MORE than ``digital_banking_share_over`` of them at a branch or an ATM, an
    average transaction below ``digital_banking_max_avg_cny``, and younger than
    ``digital_banking_max_age`` on the transaction's local date."""
    w = state.windows
    if w.count < rules.digital_banking_min_transactions or state.birth_date is None:
        return None
    if not state.consent:
        return None
    offline = w.channels[_BRANCH] + w.channels[_ATM]
    if offline <= rules.digital_banking_share_over * w.count:
        return None
    avg = w.average_fen()
    if avg >= rules.digital_banking_max_avg_fen:
        return None  # large amounts: the branch offer's customers, not the app's
    age = age_on(date.fromisoformat(state.birth_date), local_date(ev_day))
    if age >= rules.digital_banking_max_age:
        return None
    reason = {
        "age": str(age),
        "branch_atm_transactions": str(offline),
        "window_transactions": str(w.count),
        "window_days": str(rules.window_days),
        "branch_atm_share": ratio_str(offline, w.count),
        "avg_amount_cny": fen_str(avg),
    }
    return _offer(state, "digital_banking", event, rules, reason)


def branch_priority_offer(state: CustomerState, event: InputEvent, rules: Rules) -> Offer | None:
    """Customers of any age whose transactions are mostly at the branch and large on
    average get priority branch service (an appointment, a priority counter): at least
    ``branch_priority_min_transactions`` in the window, MORE than
    ``branch_priority_share_over`` of them at a branch, an average transaction of at
    least ``branch_priority_min_avg_cny``."""
    w = state.windows
    if w.count < rules.branch_priority_min_transactions:
        return None
    branch = w.channels[_BRANCH]
    if branch <= rules.branch_priority_share_over * w.count:
        return None
    avg = w.average_fen()
    if avg < rules.branch_priority_min_avg_fen:
        return None
    reason = {
        "branch_transactions": str(branch),
        "window_transactions": str(w.count),
        "window_days": str(rules.window_days),
        "branch_share": ratio_str(branch, w.count),
        "avg_amount_cny": fen_str(avg),
    }
    return _offer(state, "branch_priority", event, rules, reason)


def assessment_due_on_buy(state: CustomerState, tx: InputEvent, rules: Rules) -> Offer | None:
    """An investment buy without a valid assessment (expired or never made): the
    customer is due a new risk assessment."""
    if valid_risk_type(state, tx.ts, rules) is not None:
        return None
    reason = {"trigger": "investment_buy", **assessment_facts(state)}
    return _offer(state, "risk_assessment_due", tx, rules, reason)
