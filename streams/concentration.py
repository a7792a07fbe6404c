"""Value concentration: the share of assets and of contribution the top customers hold.

Shared by the worker, which exports the top-20% shares as the gauges
``tierstream_aum_top20_share`` and ``tierstream_contribution_top20_share`` and the
estimated annual contribution per tier as ``tierstream_contribution_cny`` (wealth and
profit concentration are the first things a private bank's management looks at --
the 80/20 analysis is on profit -- and a sudden move means data trouble or a large
client leaving), and by the management report (streams/tools/report.py), so both
compute them the same way. Sums are exact ``Decimal``; only the ratios become floats.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from streams.redis_sink import aum_values, decimal_or_none, profile_values

log = logging.getLogger(__name__)


def top_share(values: list[Decimal], share: float = 0.2) -> float:
    """Share of the total held by the top ``share`` of customers (0.0 .. 1.0).

    The top group is ``ceil(n * share)`` customers, so a small bank still has at least
    one. Negative values (an overdrawn current account) count as zero: concentration is
    about who holds the assets or brings the profit. Sums are exact; 0.0 when nobody
    holds anything.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be within (0, 1], got {share}")
    ordered = sorted((max(v, Decimal(0)) for v in values), reverse=True)
    total = sum(ordered, Decimal(0))
    if not ordered or total == 0:
        return 0.0
    k = max(1, math.ceil(len(ordered) * share - 1e-9))
    return float(sum(ordered[:k], Decimal(0)) / total)


async def aum_top_share(client: Any, prefix: str, share: float = 0.2) -> float:
    """The top-``share`` AUM share over every profile in Redis.

    Unreadable values are logged and left out; profiles without AUM yet are left out.
    """
    values, bad = await aum_values(client, prefix)
    if bad:
        log.warning("aum_top_share: %d profiles with an unreadable aum_cny were left out", bad)
    return top_share(values, share)


@dataclass(frozen=True)
class ValueConcentration:
    """What the worker's Pareto gauges show, from one scan of the profiles."""

    aum_top20_share: float
    contribution_top20_share: float
    #: tier -> the sum of the estimated annual contributions of its customers
    contribution_by_tier: dict[str, Decimal] = field(default_factory=dict)
    #: profiles left out for an unreadable aum_cny or contribution_cny
    unreadable: int = 0


async def value_concentration(client: Any, prefix: str) -> ValueConcentration:
    """AUM and contribution concentration and contribution per tier, over every profile
    in Redis. A profile written before contribution existed (no contribution_cny) counts
    for AUM only; unreadable values are left out and counted."""
    aums: list[Decimal] = []
    contributions: list[Decimal] = []
    by_tier: dict[str, Decimal] = {}
    bad = 0
    rows = await profile_values(client, prefix, ("aum_cny", "contribution_cny", "tier"))
    for aum_text, contribution_text, tier in rows:
        aum = decimal_or_none(aum_text)
        if aum is None:
            bad += 1
            continue
        aums.append(aum)
        if contribution_text == "":
            continue
        value = decimal_or_none(contribution_text)
        if value is None:
            bad += 1
            continue
        contributions.append(value)
        if tier:
            by_tier[tier] = by_tier.get(tier, Decimal(0)) + value
    if bad:
        log.warning("value_concentration: %d profiles with unreadable values were left out", bad)
    return ValueConcentration(
        aum_top20_share=top_share(aums),
        contribution_top20_share=top_share(contributions),
        contribution_by_tier=by_tier,
        unreadable=bad,
    )
