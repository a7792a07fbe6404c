"""The ``rfm_slipping`` alert (issue 22): RFM that drives something. The day a
customer's R score falls to 2 (no transaction for ``rfm.recency_days[2]`` days), their
segment as of that day decides whether relationship managers hear of it.

Why a module of its own: state/triggers.py schedules and fires every timer; what this
one computes -- when it is due, and the RFM scores and the alert it sends -- is about
RFM, not about scheduling.
"""

from __future__ import annotations

from datetime import date

from state import alerts
from state.contribution import recent_flows_fen
from state.customer import CustomerState
from state.decisions import TIER_RANK, Decision
from state.money import fen_str
from state.rfm import f_score, m_score, r_score, segment
from state.rules import Rules

__all__ = ["fire_slip", "iso_day", "slip_due"]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_HNW = TIER_RANK["hnw"]


def iso_day(day: int) -> str:
    """A local day number as an ISO date (``2026-01-31``)."""
    return date.fromordinal(day + _EPOCH_ORDINAL).isoformat()


def slip_due(state: CustomerState, rules: Rules, after: int) -> tuple[int, int] | None:
    """RFM that drives something: the day the R score falls to 2 -- recency beyond
    ``rfm.recency_days[2]`` -- for a customer of ``care.slipping_min_tier`` or above
    (fired only if the segment is then one of ``care.slipping_segments``)."""
    if not rules.slipping_segments or not state.tx_days or state.tier is None:
        return None
    if TIER_RANK[state.tier] < rules.slipping_min_tier:
        return None
    if (
        "hibernating" not in rules.slipping_segments
        and state.windows.count < rules.rfm_frequency[1]
    ):
        return None  # F < 3 now, so at the due day too: at_risk and cant_lose need F >= 3
    day = state.tx_last_day + rules.rfm_recency_days[2] + 1
    ts = rules.day_start_ms(day)
    return (ts, day) if ts > after else None


def fire_slip(
    state: CustomerState,
    day: int,
    ts: int,
    cause: str,
    trigger: str,
    rules: Rules,
    out: list[Decision],
) -> None:
    """The customer's R score fell to 2 today: their RFM segment as of today (F and M
    over the window ending today) decides whether relationship managers hear of it."""
    if state.tier is None or TIER_RANK[state.tier] < rules.slipping_min_tier:
        return
    recency = day - state.tx_last_day
    count, turnover = _window_as_of(state, day, rules)
    if rules.rfm_monetary == "turnover":
        monetary = turnover
    else:
        inflow, spend = recent_flows_fen(state, day)
        monetary = spend if rules.rfm_monetary == "spend" else inflow
    r, f, m = r_score(recency, rules), f_score(count, rules), m_score(monetary, rules)
    seg = segment(r, f, m)
    if seg not in rules.slipping_segments:
        return
    reason = {
        "trigger": trigger,
        "segment": seg,
        "r_score": str(r),
        "f_score": str(f),
        "m_score": str(m),
        "recency_days": str(recency),
        "frequency": str(count),
        "monetary_cny": fen_str(monetary),
        "monetary": rules.rfm_monetary,
        "last_transaction_day": iso_day(state.tx_last_day),
        "tier": state.tier,
    }
    severity = "critical" if TIER_RANK[state.tier] >= _HNW else "warning"
    a = alerts.emit_alert(state, "rfm_slipping", severity, ts, cause, trigger, rules, reason)
    if a is not None:
        out.append(a)


def _window_as_of(state: CustomerState, day: int, rules: Rules) -> tuple[int, int]:
    """(transactions, CNY sum in fen) of the window that ends on ``day``: the buckets
    newer than ``day - windows.days`` (the state's own window may not have moved there
    yet: nothing moves it but events)."""
    first = day - rules.window_days + 1
    count = total = 0
    for bday, bucket in state.windows.buckets.items():
        if first <= bday <= day:
            total += bucket[0]
            count += sum(packed >> 3 for packed in bucket[1:])
    return count, total
