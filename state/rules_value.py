"""The customer-value sections of the rules (issue 22): contribution rates
(``[value]``), tiers reached by behaviour (``[tiers.behaviour]``), what RFM scores and
which slipping customers the care alerts name, and the channel offers' thresholds.

Why apart from state/rules.py: ``Rules`` holds them like every other threshold, but
their checks are many and only about these keys; kept here, the loader stays readable
(and within the size every module keeps, tests/test_layers.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from itertools import pairwise
from types import MappingProxyType
from typing import Any

from schemas.events import TRANSACTION_TYPES
from state.decisions import TIER_RANK, TIERS
from state.rules_reader import TableReader, cny_to_fen

__all__ = ["BEHAVIOUR_CRITERIA", "RFM_MONETARY", "SLIPPING_SEGMENTS", "value_and_behaviour"]

#: Behaviour criteria a tier may be reached by besides AUM ([tiers.behaviour.<tier>]
#: keys without the ``_cny``), in the order they win ties after AUM.
BEHAVIOUR_CRITERIA = ("monthly_inflow", "contribution", "sme_turnover")
#: What the RFM M score scores (rfm.monetary).
RFM_MONETARY = ("turnover", "spend", "inflow")
#: RFM segments a customer can be in the day their R score falls to 2
#: (care.slipping_segments).
SLIPPING_SEGMENTS = ("at_risk", "cant_lose", "hibernating")


def value_and_behaviour(r: TableReader) -> dict[str, Any]:
    """Contribution rates, tiers by behaviour, RFM that drives alerts, channel offers
    (issue 22)."""
    fees = r.raw("value.fees")
    if not isinstance(fees, Mapping) or set(fees) != set(TRANSACTION_TYPES):
        raise ValueError(
            f"rules: 'value.fees' must list every transaction type {TRANSACTION_TYPES}"
        )
    behaviour: dict[str, dict[str, int]] = {}
    for tier in TIERS[1:]:
        table = r.raw(f"tiers.behaviour.{tier}")
        if not isinstance(table, Mapping):
            raise ValueError(f"rules: 'tiers.behaviour.{tier}' must be a table")
        floors: dict[str, int] = {}
        for key in table:
            name = key.removesuffix("_cny")
            if name not in BEHAVIOUR_CRITERIA or not key.endswith("_cny"):
                known = ", ".join(f"{c}_cny" for c in BEHAVIOUR_CRITERIA)
                raise ValueError(
                    f"rules: unknown key 'tiers.behaviour.{tier}.{key}' (criteria: {known})"
                )
            floors[name] = cny_to_fen(
                r.decimal(f"tiers.behaviour.{tier}.{key}", lo=Decimal("0.01"))
            )
        if floors:
            behaviour[tier] = floors
    for name in BEHAVIOUR_CRITERIA:  # a higher tier needs a higher floor
        seen = [(t, behaviour[t][name]) for t in TIERS[1:] if name in behaviour.get(t, {})]
        for (lower, lo_fen), (upper, up_fen) in pairwise(seen):
            if up_fen <= lo_fen:
                raise ValueError(
                    f"rules: 'tiers.behaviour.{upper}.{name}_cny' must be above "
                    f"'tiers.behaviour.{lower}.{name}_cny'"
                )
    slipping = r.raw("care.slipping_segments")
    if not isinstance(slipping, list) or not all(s in SLIPPING_SEGMENTS for s in slipping):
        raise ValueError(
            f"rules: 'care.slipping_segments' must list segments of {SLIPPING_SEGMENTS} "
            f"(the ones a customer can be in when their R score falls to 2), got {slipping!r}"
        )
    return {
        "deposit_nim": r.ratio("value.deposit_nim"),
        "wealth_fee_rate": r.ratio("value.wealth_fee_rate"),
        "loan_spread": r.ratio("value.loan_spread"),
        "card_interchange": r.ratio("value.card_interchange"),
        "transaction_fees_fen": MappingProxyType(
            {t: cny_to_fen(r.decimal(f"value.fees.{t}")) for t in TRANSACTION_TYPES}
        ),
        "tier_behaviour": MappingProxyType({t: MappingProxyType(f) for t, f in behaviour.items()}),
        "inflow_months": _at_most(r, "tiers.inflow_months", 12),
        "rfm_monetary": r.string("rfm.monetary", RFM_MONETARY),
        "slipping_segments": frozenset(slipping),
        "slipping_min_tier": TIER_RANK[r.string("care.slipping_min_tier", TIERS)],
        "digital_banking_max_avg_fen": cny_to_fen(
            r.decimal("offers.digital_banking_max_avg_cny", lo=Decimal("0.01"))
        ),
        "branch_priority_min_transactions": r.integer("offers.branch_priority_min_transactions", 1),
        "branch_priority_share_over": r.ratio("offers.branch_priority_share_over"),
        "branch_priority_min_avg_fen": cny_to_fen(
            r.decimal("offers.branch_priority_min_avg_cny", lo=Decimal("0.01"))
        ),
    }


def _at_most(r: TableReader, key: str, hi: int) -> int:
    v = r.integer(key, 1)
    if v > hi:
        raise ValueError(f"rules: '{key}' must be at most {hi} (the months a state keeps), got {v}")
    return v
