"""Tier assignment with hysteresis.

Why hysteresis: a customer whose AUM hovers around a floor would otherwise flap between
tiers (and get a tier change, an offer and maybe an alert) every few days. Upgrades are
immediate -- the bank wants to serve a newly affluent customer now -- but a downgrade
needs the basis to fall *more than a band* below the current tier's floor, and then
lands in the tier the basis is actually in.
"""

from __future__ import annotations

from decimal import Decimal

from state.customer import CustomerState
from state.decisions import TIER_RANK, TIERS
from state.money import CTX
from state.rules import Rules


def tier_index(basis_fen: int | Decimal, rules: Rules) -> int:
    """Rank of the highest tier whose floor the basis reaches (0 = mass)."""
    floors = rules.tier_floors_fen
    i = len(floors) - 1
    while i > 0 and basis_fen < floors[i]:
        i -= 1
    return i


def next_tier(current: str | None, basis_fen: int | Decimal, rules: Rules) -> str | None:
    """The tier after applying hysteresis, or None if the tier stays as it is.

    ``current`` None means the customer has no tier yet: the basis decides directly.
    """
    target = tier_index(basis_fen, rules)
    if current is None:
        return TIERS[target]
    cur = TIER_RANK[current]
    if target > cur:
        return TIERS[target]
    if target < cur and basis_fen < rules.tier_down_fen[cur]:
        return TIERS[target]
    return None


def basis_fen(state: CustomerState, rules: Rules, today: int | None = None) -> int | Decimal:
    """The tiering basis in fen: current AUM, or the average daily AUM (exact Decimal).

    Average daily AUM: each of the last ``tier_avg_days`` local days (today included)
    counts with its end-of-day AUM (today: the current AUM), carried forward from the
    last day on which AUM changed. Days before the customer's first AUM sample are not
    counted, so a new customer is not dragged down by days the bank didn't know them.
    ``today``: the local day to average up to (default the customer's own "today";
    a later day when time alone moves the average, state/tier_policy.py).
    """
    samples = state.aum_samples  # [day, high, close, ...] by day ascending
    if rules.tier_basis == "current" or not samples:
        return state.aum_fen
    if today is None:
        today = state.day
    start = today - rules.tier_avg_days + 1
    n = len(samples)
    j = 0
    level: int | None = None  # the close carried into the window, if any
    while j < n and samples[j] < start:
        level = samples[j + 2]
        j += 3
    # each level counts from the day it was set until the next sample (or today)
    total = 0
    counted = 0
    since = start
    while j < n:
        d = samples[j]
        if level is not None:
            total += level * (d - since)
            counted += d - since
        level = samples[j + 2]
        since = d
        j += 3
    if level is not None:
        total += level * (today + 1 - since)
        counted += today + 1 - since
    if counted == 0:
        return state.aum_fen
    return CTX.divide(Decimal(total), Decimal(counted))
