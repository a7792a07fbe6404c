"""Offers: next-best-action triggers, gated by marketing consent and a per-kind cadence.

Why the gates live here and not downstream: an offer that must not be sent should not
be emitted at all (consent is a legal requirement), and the cadence (at most one offer
of a kind per customer per N days, in event time) must be deterministic on replay.
An offer withheld for lack of consent is dropped, not deferred.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from schemas.events import InputEvent
from state.customer import CustomerState
from state.decisions import TIER_RANK, Offer, derive_event_id
from state.rules import DAY_MS, Rules
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


def _offer(
    state: CustomerState,
    kind: str,
    event: InputEvent,
    rules: Rules,
    reason: dict[str, Any],
) -> Offer | None:
    """Emit ``kind`` if consent is on record and the kind's cadence allows it."""
    if not state.consent:
        return None
    last = state.last_offer.get(kind)
    if last is not None and event.ts - last < rules.offer_cooldown_days[kind] * DAY_MS:
        return None
    state.last_offer[kind] = max(event.ts, last) if last is not None else event.ts
    return Offer(
        event_id=derive_event_id(state.customer_id, event.event_id, f"offer:{kind}", rules.version),
        customer_id=state.customer_id,
        ts=event.ts,
        kind=kind,
        tier=state.tier or "mass",
        cause_event_id=event.event_id,
        rules_version=rules.version,
        reason=reason,
    )


def tier_entry_offers(
    state: CustomerState, to_tier: str, event: InputEvent, rules: Rules
) -> list[Offer]:
    """Offers for entering ``to_tier`` (upgrade or initial tier; not on a downgrade)."""
    out: list[Offer] = []
    kind = TIER_OFFERS.get(to_tier)
    if kind is not None:
        o = _offer(state, kind, event, rules, {"entered_tier": to_tier})
        if o is not None:
            out.append(o)
    if state.segment == "sme" and TIER_RANK[to_tier] >= TIER_RANK["affluent"]:
        o = _offer(state, "sme_credit", event, rules, {"entered_tier": to_tier, "segment": "sme"})
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


def birthday_offer(
    state: CustomerState, event: InputEvent, ev_day: int, rules: Rules
) -> Offer | None:
    """The first event on or after the birthday each (local) year greets the customer."""
    if state.birth_date is None or not state.consent:
        return None
    today = local_date(ev_day)
    if today.year <= state.greeted_year:
        return None
    bday = birthday_in(today.year, date.fromisoformat(state.birth_date))
    if today < bday:
        return None
    o = _offer(state, "birthday_greeting", event, rules, {"birthday": bday.isoformat()})
    if o is not None:
        state.greeted_year = today.year
    return o
