"""Suitable product recommendations: what the catalogue may offer this customer.

Why a hard filter before any ranking: suitability is a regulatory rule, not a
preference. A product whose risk level R*n* exceeds the customer's risk type C*m*
(n > m) must never be recommended, and without a valid assessment nothing above R1 is
(the offer set then also carries ``risk_assessment_due``). Tier, AUM and segment
minimums are the bank's own eligibility rules and filter the same way.

Ranking among the suitable products (documented in docs/rules.md): the highest risk
level first (the closest match to the customer's appetite), then the most exclusive
(higher minimum tier, then higher minimum AUM), then catalogue order -- so the result
is deterministic for a given catalogue.
"""

from __future__ import annotations

from collections.abc import Collection

from schemas.events import SEGMENTS
from state.catalogue import Product
from state.customer import CustomerState
from state.decisions import TIER_RANK
from state.risk import valid_risk_type
from state.rules import Rules

_ALL_SEGMENTS = frozenset(SEGMENTS)
#: Offer kinds that recommend products (campaign offers do too, whatever their kind).
RECOMMENDING_KINDS = frozenset(
    {"wealth_products", "relationship_manager", "private_banking_invitation", "reactivation"}
)


def max_product_risk(state: CustomerState, at_ms: int, rules: Rules) -> int:
    """The highest product risk level (1..5) suitable at ``at_ms``: C*n* -> R*n*, and
    R1 when there is no valid assessment (none, expired or future-dated)."""
    rtype = valid_risk_type(state, at_ms, rules)
    return int(rtype[1]) if rtype is not None else 1


def eligible(
    state: CustomerState, rules: Rules, at_ms: int, only: Collection[str] | None = None
) -> list[Product]:
    """Every suitable, eligible product, ranked (see module doc)."""
    level = max_product_risk(state, at_ms, rules)
    tier = TIER_RANK[state.tier] if state.tier is not None else 0
    aum = state.aum_fen
    segment = state.segment
    out = [
        p
        for p in rules.catalogue
        if p.risk <= level
        and p.min_tier <= tier
        and p.min_aum_fen <= aum
        # an unknown segment only gets products open to every segment
        and (segment in p.segments if segment is not None else p.segments == _ALL_SEGMENTS)
        and (only is None or p.id in only)
    ]
    out.sort(key=lambda p: (-p.risk, -p.min_tier, -p.min_aum_fen, p.order))
    return out


def recommend(
    state: CustomerState,
    rules: Rules,
    limit: int = 5,
    *,
    at_ms: int | None = None,
    only: Collection[str] | None = None,
) -> list[dict[str, str]]:
    """Up to ``limit`` ranked products as dicts (id, name, type, risk "R1".."R5").

    ``at_ms`` is when the assessment must be valid (default: the customer's newest
    event time); ``only`` restricts to these product ids (a campaign's list).
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    when = state.updated_at if at_ms is None else at_ms
    return [
        {"id": p.id, "name": p.name, "type": p.type, "risk": f"R{p.risk}"}
        for p in eligible(state, rules, when, only)[:limit]
    ]


def product_ids(
    state: CustomerState,
    rules: Rules,
    at_ms: int,
    only: Collection[str] | None = None,
    limit: int = 5,
) -> str:
    """The ranked ids joined with "," -- the form ``reason["products"]`` takes, because
    output reasons are flat (strings, numbers, booleans, null; see docs/topics.md)."""
    return ",".join(p.id for p in eligible(state, rules, at_ms, only)[:limit])
