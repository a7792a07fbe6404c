"""When a tier changes: hysteresis, the bank's downgrade policies, and time alone.

Why a module of its own: a tier used to change only at an AUM event (state/core.py).
Issue 21 adds three ways it can change without one, all decided here:

* **Downgrade policies** (``tiers.min_days_in_tier``, ``tiers.downgrade_grace_days``,
  ``tiers.review``): a downgrade that hysteresis allows may have to wait -- until the
  customer has been in the tier long enough, until the basis has stayed below the
  threshold long enough, or until the next month or quarter review. Upgrades never
  wait. When the wait is over, the downgrade happens then, without a new event.
* **A basis that moves with time**: with ``tiers.basis = "avg_daily"`` every local day
  without an event carries the current AUM into the average, so the basis moves every
  midnight (an affluent customer whose AUM fell to 0 is mass within the averaging
  window, not whenever their next balance arrives).
* **A rules version taking effect** (state/timeline.py): everyone is re-evaluated at
  its ``effective_from``.

The model is the timers' (state/triggers.py): the tier is evaluated at every applied
AUM event and, between events, at every instant at which time alone can change the
outcome -- each local midnight (the average moves), the end of a minimum stay or of a
grace period, each review instant, each switch of rules. ``tier_due`` finds the first
such instant at which the outcome actually changes (a tier, or the start or end of a
grace period), so the clock only wakes a customer when something happens; the
decision's ``ts`` is that instant and its id and ``cause_event_id`` derive from a
trigger id (``tier:<instant>``, ``rules:<version>``), so whichever tick or event fires
it, the record is the same byte for byte.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date
from decimal import Decimal

from schemas.timefmt import format_ts_utc
from state import alerts, offers, overrides
from state.customer import CustomerState
from state.decisions import TIER_RANK, TIERS, Decision
from state.money import CTX
from state.rules import DAY_MS, Rules
from state.tiers import (
    TierEvaluation,
    basis_fen,
    decide,
    evaluate,
    holds,
    rules_change,
    tier_index,
)

__all__ = [
    "after_aum_change",
    "is_review_instant",
    "next_review_ms",
    "retier",
    "tier_due",
    "tier_trigger",
    "verdict",
]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_QUARTER_MONTHS = (1, 4, 7, 10)
_INF = Decimal("Infinity")


# ------------------------------------------------------------------ the verdict


def verdict(
    state: CustomerState, rules: Rules, ts: int, ev: TierEvaluation
) -> tuple[str | None, int]:
    """The tier decision at event time ``ts`` for the bases ``ev``: (the new tier or
    None, the new ``below_since``). Hysteresis first (state/tiers.py: a downgrade only
    when every basis, AUM and behaviour, is below the band); a downgrade it allows is
    then held back by the policies until each one is satisfied."""
    if not rules.tier_policies:
        return decide(state.tier, ev, rules), -1
    cur = state.tier
    target = ev.rank
    if cur is None:
        return TIERS[target], -1
    rank = TIER_RANK[cur]
    if target > rank:
        return TIERS[target], -1
    if rank == 0 or target == rank or holds(rank, ev, rules):
        return None, -1
    grace = rules.tier_grace_days
    below = (state.below_since if state.below_since >= 0 else ts) if grace else -1
    if rules.tier_min_days and ts < state.tier_since + rules.tier_min_days * DAY_MS:
        return None, below
    if grace and ts < below + grace * DAY_MS:
        return None, below
    if rules.tier_review != "none" and not is_review_instant(rules, ts):
        return None, below
    return TIERS[target], -1


def _review_day(rules: Rules, day: int) -> bool:
    d = date.fromordinal(day + _EPOCH_ORDINAL)
    return d.day == 1 and (rules.tier_review == "month" or d.month in _QUARTER_MONTHS)


def is_review_instant(rules: Rules, ts: int) -> bool:
    """Whether ``ts`` is a review: local midnight starting a month (``month``) or a
    quarter (``quarter``: 1 January, April, July, October) in the rules' zone."""
    day = rules.local_day(ts)
    return ts == rules.day_start_ms(day) and _review_day(rules, day)


def next_review_ms(rules: Rules, after: int) -> int:
    """The first review instant strictly after ``after`` (``tiers.review`` is set)."""
    d = date.fromordinal(rules.local_day(after) + _EPOCH_ORDINAL)
    month = d.month + 1  # months counted on past December: 13 is next January
    if rules.tier_review == "quarter":
        while (month - 1) % 12 + 1 not in _QUARTER_MONTHS:
            month += 1
    year, month = d.year + (month - 1) // 12, (month - 1) % 12 + 1
    ts = rules.day_start_ms(date(year, month, 1).toordinal() - _EPOCH_ORDINAL)
    if ts <= after:  # cannot happen: the month's first midnight is after any day before it
        return next_review_ms(rules, ts)
    return ts


# ------------------------------------------------------------------ time alone


def tier_trigger(ts: int) -> str:
    """The trigger id of a tier evaluation that time alone caused at ``ts``."""
    return f"tier:{format_ts_utc(ts)}"


def _window_levels(state: CustomerState, rules: Rules, lo: int, hi: int) -> list[int | None]:
    """The end-of-day AUM level counted for each local day ``lo..hi`` by the average:
    the close of the newest sample on or before the day (carried forward; the current
    AUM after the last sample), None before the first sample."""
    samples = state.aum_samples  # [day, high, close, ...] by day ascending
    out: list[int | None] = []
    j, n = 0, len(samples)
    level: int | None = None
    for day in range(lo, hi + 1):
        while j < n and samples[j] <= day:
            level = samples[j + 2]
            j += 3
        out.append(level)
    return out


def _avg_path(state: CustomerState, rules: Rules, first: int, last: int) -> list[int | Decimal]:
    """The average-daily basis at each local day ``first..last`` (all after the
    customer's today, so no event changes the levels in between), exactly as
    ``basis_fen(state, rules, day)`` computes it, with one sliding sum."""
    n = rules.tier_avg_days
    levels = _window_levels(state, rules, first - n + 1, last)
    total = counted = 0
    for lv in levels[: n - 1]:
        if lv is not None:
            total += lv
            counted += 1
    out: list[int | Decimal] = []
    for i in range(n - 1, len(levels)):
        lv = levels[i]
        if lv is not None:
            total += lv
            counted += 1
        out.append(CTX.divide(Decimal(total), Decimal(counted)) if counted else state.aum_fen)
        old = levels[i - n + 1]
        if old is not None:
            total -= old
            counted -= 1
    return out


def _stays(state: CustomerState, rules: Rules, rank: int) -> bool:
    """Whether every level the average can still take lies where the tier stays put
    (at or above the downgrade threshold, below the next floor): an average of them
    then does too, whatever the day. A cheap exit for the hot path."""
    down = rules.tier_down_fen[rank] if rank else -_INF
    floors = rules.tier_floors_fen
    up = floors[rank + 1] if rank + 1 < len(floors) else _INF
    samples = state.aum_samples  # [day, high, close, ...] by day ascending
    # the closes from the newest one before the current window on (the level carried
    # into it) -- a superset of the levels of every later window -- and the AUM now
    first = bisect_left(samples[0::3], state.day - rules.tier_avg_days + 1)
    closes = samples[2::3][max(first - 1, 0) :]
    aum = state.aum_fen
    lo, hi = min(min(closes), aum), max(max(closes), aum)
    return down <= lo and hi < up


def tier_due(state: CustomerState, rules: Rules, after: int) -> int | None:
    """The first instant strictly after ``after`` at which time alone changes the tier
    decision (a tier, or the start or end of a grace period), or None while nothing
    will until the next event. Exact: ``triggers`` fires it at that instant."""
    cur = state.tier
    if cur is None or state.override_tier is not None:
        # under an override time alone changes nothing: the rules' tier underneath is
        # followed at events and switches of rules, and decided again at its end
        return None
    avg = rules.tier_basis == "avg_daily" and bool(state.aum_samples)
    if not avg and not rules.tier_policies:
        return None  # the defaults: only events change tiers
    rank = TIER_RANK[cur]
    basis: int | Decimal = state.aum_fen
    if not avg:
        pending = (rank > 0 and basis < rules.tier_down_fen[rank]) or (
            tier_index(basis, rules) > rank
        )
        if state.below_since < 0 and not pending:
            return None
    elif state.below_since < 0 and _stays(state, rules, rank):
        return None
    candidates: set[int] = set()
    horizon = after
    first_day = rules.local_day(after) + 1
    path: list[int | Decimal] = []
    if avg:
        last_day = max(state.day + rules.tier_avg_days, first_day)
        path = _avg_path(state, rules, first_day, last_day)
        for day in range(first_day, last_day + 1):
            candidates.add(rules.day_start_ms(day))
    else:
        # the basis stands still: after the next midnight only the instants below can
        # change the outcome (that midnight matters when a late event left a downgrade
        # pending whose wait had already passed)
        candidates.add(rules.day_start_ms(first_day))
    if rules.tier_min_days:
        candidates.add(state.tier_since + rules.tier_min_days * DAY_MS)
    if rules.tier_grace_days and state.below_since >= 0:
        candidates.add(state.below_since + rules.tier_grace_days * DAY_MS)
    candidates = {t for t in candidates if t > after}
    if candidates:
        horizon = max(candidates)
    if rules.tier_review != "none":
        t = next_review_ms(rules, after)
        while True:
            candidates.add(t)
            if t > horizon:
                break
            t = next_review_ms(rules, t)
    for t in sorted(candidates):
        if avg:
            day = rules.local_day(t)
            if day >= first_day:
                basis = path[min(day - first_day, len(path) - 1)]
            else:  # later on the day of ``after`` itself
                basis = basis_fen(state, rules, max(day, state.day))
        to_tier, below = verdict(state, rules, t, evaluate(state, rules, basis=basis))
        if to_tier is not None or below != state.below_since:
            return t
    return None


# ------------------------------------------------------------------ applying it


def retier(
    state: CustomerState,
    rules: Rules,
    ts: int,
    ev: TierEvaluation,
    cause: str,
    out: list[Decision],
    trigger: str | None = None,
) -> None:
    """Evaluate the tier at ``ts`` for the bases ``ev`` (state/tiers.py: AUM and the
    behaviour criteria) and apply it: the new tier, its ``tier_since`` and
    ``below_since``, the tier change, and what entering or leaving a tier sends
    (offers with consent and caps, the high-value downgrade alert).

    Under a relationship manager's override (issue 22) the effective tier holds: only
    the rules' tier underneath (``rules_tier``) follows the evaluation -- also at a
    switch of rules, so the override's end lands on the new version's tier. The
    downgrade policies do not apply to it (nothing is sent for it; the override's end
    decides with hysteresis alone, state/overrides.py).

    ``cause`` is the input event's id (an event) or the trigger id (time, a rules
    switch); the decisions' ids derive from it. ``trigger`` (time and rules only)
    goes into the reason."""
    if state.override_tier is not None:
        overrides.follow_rules(state, ev, rules)
        state.below_since = -1
        return
    to_tier, below = verdict(state, rules, ts, ev)
    if to_tier is None:
        state.below_since = below
        return
    from_tier = state.tier
    held_since = state.below_since
    state.below_since = -1
    extra: dict[str, str] = {}
    down = from_tier is not None and TIER_RANK[to_tier] < TIER_RANK[from_tier]
    if down and rules.tier_policies:
        extra["min_days_in_tier"] = str(rules.tier_min_days)
        extra["downgrade_grace_days"] = str(rules.tier_grace_days)
        extra["review"] = rules.tier_review
        if held_since >= 0:
            extra["below_since"] = format_ts_utc(held_since)
    if trigger is not None:
        extra["trigger"] = trigger
    change = rules_change(state, to_tier, ev, cause, ts, rules, extra)
    out.append(change)
    if down:
        assert from_tier is not None
        basis_str = change.reason["basis_cny"]
        a = alerts.high_value_downgrade(state, ts, cause, from_tier, to_tier, basis_str, rules)
        if a is not None:
            out.append(a)
    else:
        out.extend(offers.tier_entry_offers(state, to_tier, ts, cause, rules))


def after_aum_change(
    state: CustomerState, rules: Rules, ts: int, cause: str, out: list[Decision]
) -> None:
    """The tier decision after an event that may have moved the AUM (state/core.py)."""
    ev = evaluate(state, rules)
    # the hot path: without policies or an override nothing is held, and most events
    # change no tier
    held = state.override_tier is not None or rules.tier_policies
    if held or decide(state.tier, ev, rules) is not None:
        retier(state, rules, ts, ev, cause, out)
    elif state.below_since != -1:  # a count left by rules with a grace period
        state.below_since = -1


def retier_at(
    state: CustomerState, rules: Rules, ts: int, trigger: str, out: list[Decision]
) -> None:
    """A tier evaluation at ``ts`` that no event brought (time, a rules switch): the
    basis is the one at that instant (the average up to its local day)."""
    day = max(rules.local_day(ts), state.day)
    retier(state, rules, ts, evaluate(state, rules, today=day), trigger, out, trigger)
