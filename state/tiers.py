"""Tier assignment: which tier the customer's bases reach, and hysteresis.

Why hysteresis: a customer whose AUM hovers around a floor would otherwise flap between
tiers (and get a tier change, an offer and maybe an alert) every few days. Upgrades are
immediate -- the bank wants to serve a newly affluent customer now -- but a downgrade
needs the basis to fall *more than a band* below the current tier's floor, and then
lands in the tier the basis is actually in.

Why two steps (issue 22): a tier may be reached by AUM *or* by behaviour -- a salary,
a contribution, an SME's turnover (``[tiers.behaviour]``). ``evaluate`` says which tier
the bases reach and which criterion decided (the basis/criterion selection); ``decide``
applies the band to every basis (when a downgrade may happen). Policy on *when* a
tier may change (minimum days in a tier, grace periods) belongs with ``decide``; a new
basis belongs with ``evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from state.contribution import contribution_fen, monthly_inflow_fen, sme_turnover_fen
from state.customer import CustomerState
from state.decisions import TIER_RANK, TIERS, TierChange, derive_event_id
from state.money import CTX, fen_str
from state.rules import Rules
from state.rules_value import BEHAVIOUR_CRITERIA

#: The criterion name of the AUM basis in ``TierEvaluation.criterion`` and reasons.
AUM = "aum"


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


def record_aum_sample(state: CustomerState, aum_before: int) -> int:
    """After an event that may have changed the AUM: today's sample [day, high, close]
    takes it (what ``basis_fen`` averages and the AUM-drop alert looks back over).
    Returns the AUM."""
    aum = state.aum_fen
    samples = state.aum_samples  # today's sample, if any, is the last one
    if aum != aum_before or not samples:
        if samples and samples[-3] == state.day:
            if aum > samples[-2]:
                samples[-2] = aum
            samples[-1] = aum
        else:
            samples += (state.day, aum, aum)
    return aum


def trim_aum_samples(state: CustomerState, ev_day: int, rules: Rules) -> None:
    """A new local day ``ev_day``: keep the range of AUM samples the rules look back
    over, plus the newest older sample (the level carried into that range)."""
    keep = rules.aum_drop_days
    if rules.tier_basis == "avg_daily":
        keep = max(keep, rules.tier_avg_days)
    keep_from = ev_day - keep + 1
    samples = state.aum_samples  # [day, high, close, ...] by day ascending
    old = 0
    while old < len(samples) and samples[old] < keep_from:
        old += 3
    if old > 3:
        del samples[: old - 3]


# ------------------------------------------------------------------ behaviour criteria


@dataclass(frozen=True, slots=True)
class TierEvaluation:
    """What the rules' bases say about a customer now (``evaluate``)."""

    #: the highest tier any basis reaches
    rank: int
    #: the basis that reaches it: ``AUM`` or a behaviour criterion (AUM wins ties, then
    #: the order of ``BEHAVIOUR_CRITERIA``)
    criterion: str
    #: the AUM basis in fen (current AUM or the average daily AUM)
    basis: int | Decimal
    #: each configured behaviour criterion's value in fen (None: not known yet)
    values: tuple[tuple[str, int | None], ...] = ()


def criterion_value(state: CustomerState, criterion: str, rules: Rules) -> int | None:
    """A behaviour criterion's value in fen, or None while it is not known."""
    if criterion == "monthly_inflow":
        return monthly_inflow_fen(state, rules)
    if criterion == "contribution":
        return contribution_fen(state, rules) if state.version else None
    return sme_turnover_fen(state, rules)


def evaluate(
    state: CustomerState,
    rules: Rules,
    today: int | None = None,
    basis: int | Decimal | None = None,
) -> TierEvaluation:
    """Which tier the customer's bases reach: AUM always, and the behaviour criteria
    the rules configure for some tier. Without ``[tiers.behaviour]`` this is the AUM
    tier, as it always was. ``today``: the local day the AUM basis is averaged up to
    (``basis_fen``); ``basis``: an AUM basis already known (state/tier_policy.py
    walks the average ahead of time with one sliding sum)."""
    if basis is None:
        basis = basis_fen(state, rules, today)
    rank = tier_index(basis, rules)
    behaviour = rules.tier_behaviour
    if not behaviour:
        return TierEvaluation(rank, AUM, basis)
    criterion = AUM
    used = [c for c in BEHAVIOUR_CRITERIA if any(c in f for f in behaviour.values())]
    values = tuple((c, criterion_value(state, c, rules)) for c in used)
    for name, value in values:
        if value is None:
            continue
        for r in range(len(TIERS) - 1, rank, -1):
            floor = behaviour.get(TIERS[r], {}).get(name)
            if floor is not None and value >= floor:
                rank, criterion = r, name
                break
    return TierEvaluation(rank, criterion, basis, values)


def decide(current: str | None, ev: TierEvaluation, rules: Rules) -> str | None:
    """The tier after hysteresis, or None if it stays: up at once to the tier any basis
    reaches; down only when *every* basis is below the current tier's threshold less
    the band (``tiers.downgrade_band``), and then to the tier the bases reach."""
    if current is None:
        return TIERS[ev.rank]
    cur = TIER_RANK[current]
    if ev.rank > cur:
        return TIERS[ev.rank]
    if ev.rank < cur and not holds(cur, ev, rules):
        return TIERS[ev.rank]
    return None


def holds(cur: int, ev: TierEvaluation, rules: Rules) -> bool:
    """Whether some basis is still within the band of tier ``cur`` (no downgrade: the
    tier policies of state/tier_policy.py only ever hold back what this lets go)."""
    if ev.basis >= rules.tier_down_fen[cur]:
        return True
    floors = rules.tier_behaviour.get(TIERS[cur])
    if not floors:
        return False
    keep = 1 - rules.downgrade_band
    for name, value in ev.values:
        floor = floors.get(name)
        if floor is not None and value is not None and value >= floor * keep:
            return True
    return False


def criterion_reason(ev: TierEvaluation, to_tier: str, rules: Rules) -> dict[str, str]:
    """What a tier change's ``reason`` says about the criterion that decided it: only
    when the rules configure behaviour criteria (otherwise AUM is the only one, and
    ``basis`` names it)."""
    if not rules.tier_behaviour:
        return {}
    out = {"criterion": ev.criterion}
    if ev.criterion != AUM:
        value = dict(ev.values)[ev.criterion]
        floor = rules.tier_behaviour[to_tier][ev.criterion]
        out["criterion_cny"] = fen_str(value if value is not None else 0)
        out["criterion_floor_cny"] = fen_str(floor)
    return out


def tier_reason(
    state: CustomerState, ev: TierEvaluation, to_tier: str, rules: Rules
) -> dict[str, str]:
    """The numbers every tier change by the rules states in its ``reason``: the basis,
    the AUM, the new tier's floor, the band, and the deciding criterion (docs/topics.md,
    ``tier-changes``). Shared by the core and the end of an override."""
    reason = {
        "basis": rules.tier_basis,
        "basis_cny": fen_str(ev.basis),
        "aum_cny": fen_str(state.aum_fen),
        "floor_cny": fen_str(rules.tier_floors_fen[TIER_RANK[to_tier]]),
        "band": str(rules.downgrade_band),
    }
    if rules.tier_basis == "avg_daily":
        reason["avg_days"] = str(rules.tier_avg_days)
    reason.update(criterion_reason(ev, to_tier, rules))
    return reason


def rules_change(
    state: CustomerState,
    to_tier: str,
    ev: TierEvaluation,
    cause_event_id: str,
    ts: int,
    rules: Rules,
    extra: dict[str, str] | None = None,
) -> TierChange:
    """The rules move the customer to ``to_tier`` (``decide``'s answer) at event time
    ``ts``: the state takes the tier, and the tier change says why (``tier_reason``;
    a downgrade also the threshold it fell below; then ``extra``: the tier policies
    and the trigger, state/tier_policy.py). Its id derives from the cause."""
    from_tier = state.tier
    reason = tier_reason(state, ev, to_tier, rules)
    if from_tier is None:
        direction = "initial"
    elif TIER_RANK[to_tier] > TIER_RANK[from_tier]:
        direction = "upgrade"
    else:
        direction = "downgrade"
        reason["threshold_cny"] = fen_str(rules.tier_down_fen[TIER_RANK[from_tier]])
    if extra:
        reason.update(extra)
    state.tier = to_tier
    state.tier_since = ts
    return TierChange(
        event_id=derive_event_id(
            state.customer_id, cause_event_id, f"tier:{to_tier}", rules.version
        ),
        customer_id=state.customer_id,
        ts=ts,
        from_tier=from_tier,
        to_tier=to_tier,
        direction=direction,
        cause_event_id=cause_event_id,
        rules_version=rules.version,
        reason=reason,
    )
