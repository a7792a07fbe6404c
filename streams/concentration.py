"""AUM concentration: the share of all assets the richest customers hold (Pareto).

Shared by the worker, which exports the top-20% share as the gauge
``tierstream_aum_top20_share`` (wealth concentration is the first thing a private
bank's management looks at, and a sudden move in it means data trouble or a large
client leaving), and by the management report (streams/tools/report.py), so both
compute it the same way. Sums are exact ``Decimal``; only the ratio becomes a float.
"""

from __future__ import annotations

import logging
import math
from decimal import Decimal
from typing import Any

from streams.redis_sink import aum_values

log = logging.getLogger(__name__)


def top_share(aum_values: list[Decimal], share: float = 0.2) -> float:
    """Share of the total AUM held by the richest ``share`` of customers (0.0 .. 1.0).

    The top group is ``ceil(n * share)`` customers, so a small bank still has at least
    one. Negative AUM (an overdrawn current account) counts as zero: concentration is
    about who holds the assets. Sums are exact; 0.0 when nobody holds anything.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be within (0, 1], got {share}")
    values = sorted((max(v, Decimal(0)) for v in aum_values), reverse=True)
    total = sum(values, Decimal(0))
    if not values or total == 0:
        return 0.0
    k = max(1, math.ceil(len(values) * share - 1e-9))
    return float(sum(values[:k], Decimal(0)) / total)


async def aum_top_share(client: Any, prefix: str, share: float = 0.2) -> float:
    """The top-``share`` AUM share over every profile in Redis (the worker's gauge).

    Unreadable values are logged and left out; profiles without AUM yet are left out.
    """
    values, bad = await aum_values(client, prefix)
    if bad:
        log.warning("aum_top_share: %d profiles with an unreadable aum_cny were left out", bad)
    return top_share(values, share)
