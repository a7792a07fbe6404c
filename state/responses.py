"""Offer responses: which offer an answer belongs to, and what the answer changes.

Why the state remembers its offers: an offer's ``event_id`` is a hash of its cause,
kind and rules version (state/decisions.py), so a response that names the offer by
``event_id`` says nothing about the offer's kind or the tier it was made at -- and
the kind is what the decline cool-down and the metric need. So every offer the core
emits is remembered (event key, time, kind, tier) in ``state.recent_offers``, the
customer's latest ``offers.answerable_offers`` of them (bounded: state/limits.py).

The cases (docs/topics.md, "offer-responses", states them for producers):

* **Matched**: the state holds the named offer, made at or before the response's
  event time. The response is an applied event; the kind's latest outcome
  (``state.offer_outcomes``) becomes this one if it is the latest response of that
  kind by event time (equal times: the larger event key, as for profiles), so a late
  redelivery never rolls a newer answer back. The shell counts it by the offer's kind
  and tier and the outcome.
* **Unmatched**: the named offer is not among the customer's remembered offers (never
  made, made to another customer, evicted as too old) or was made after the
  response's time (an answer cannot precede its question). Nothing is attributed;
  for an existing customer it is still an applied event (timers catch up, the dedup
  set remembers it), for a customer without state nothing at all happens -- a
  response creates no customer.
* **Duplicates** are the dedup set's (state/core.py), as for every input.

A declined kind is not offered again for ``offers.after_decline_days`` (per kind)
after the decline, on top of the kind's frequency cap; a later ``accepted`` or
``ignored`` of the same kind lifts it (it is the kind's latest outcome then).
"""

from __future__ import annotations

from schemas.events import OFFER_OUTCOMES, OfferResponse
from state.customer import CustomerState, MadeOffer, OfferOutcome, event_key
from state.decisions import Offer
from state.rules import Rules

__all__ = ["OUTCOMES", "declined_recently", "record", "remember_offer"]

OUTCOMES = frozenset(OFFER_OUTCOMES)


def remember_offer(state: CustomerState, offer: Offer, rules: Rules) -> None:
    """Keep ``offer`` answerable: appended, the oldest dropped beyond the rules' count."""
    made = state.recent_offers
    made.append(MadeOffer(event_key(offer.event_id), offer.ts, offer.kind, offer.tier))
    extra = len(made) - rules.answerable_offers
    if extra > 0:
        del made[:extra]


def record(
    state: CustomerState, ev: OfferResponse, key: int, rules: Rules
) -> tuple[str, str, str] | None:
    """Attribute the response (``key``: its event key) to the offer it names and keep
    the kind's latest outcome. Returns the offer's kind and tier and the outcome, or
    None when unmatched (see the module doc)."""
    wanted = event_key(ev.offer_event_id)
    made = next(
        (m for m in reversed(state.recent_offers) if m.key == wanted and m.ts <= ev.ts), None
    )
    if made is None:
        return None
    outcomes = state.offer_outcomes
    cur = outcomes.get(made.kind)
    if cur is None:
        # a new entry: first drop kinds these rules no longer emit (as the caps do)
        for gone in [k for k in outcomes if k not in rules.offer_kinds]:
            del outcomes[gone]
    if cur is None or ev.ts > cur.ts or (ev.ts == cur.ts and key > cur.tie):
        outcomes[made.kind] = OfferOutcome(ev.outcome, ev.ts, key)
    return made.kind, made.tier, ev.outcome


def declined_recently(state: CustomerState, kind: str, ts: int, rules: Rules) -> bool:
    """Whether an offer of ``kind`` at event time ``ts`` falls in the cool-down of a
    decline: the kind's latest outcome is ``declined``, at or before ``ts`` and less
    than ``offers.after_decline_days`` before it."""
    last = state.offer_outcomes.get(kind)
    return (
        last is not None
        and last.outcome == "declined"
        and 0 <= ts - last.ts < rules.after_decline_ms(kind)
    )
