"""The Redis profile hash of a customer: flat string fields for other systems to read.

Why strings and empty strings: Redis hashes hold strings; "" means unknown so readers
never have to tell a missing field from a zero. Every time-dependent figure (recency,
P(alive), risk validity) is measured at ``state.updated_at`` -- event time -- so a
replay produces the same profile as the live run.
"""

from __future__ import annotations

from schemas.timefmt import format_ts_utc
from state.customer import CustomerState
from state.lifetime import customer_clv, customer_p_alive
from state.money import fen_str
from state.rfm import f_score, m_score, r_score, segment
from state.risk import valid_risk_type
from state.rules import Rules

PROFILE_FIELDS = (
    "customer_id",
    "tier",
    "aum_cny",
    "recency_days",
    "frequency",
    "monetary_cny",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "risk_type",
    "p_alive",
    "clv",
    "preferred_channel",
    "updated_at",
    "version",
)


def profile_fields(state: CustomerState, rules: Rules) -> dict[str, str]:
    """All PROFILE_FIELDS as strings ("" when unknown). Money with 2 decimals (CNY),
    p_alive with 4 decimals, clv in CNY with 2 decimals."""
    w = state.windows
    has_tx = state.tx_days > 0
    if has_tx:
        recency = state.day - state.tx_last_day
        r, f, m = r_score(recency, rules), f_score(w.count, rules), m_score(w.sum_fen, rules)
        rfm = (str(recency), str(r), str(f), str(m), segment(r, f, m))
    else:
        rfm = ("", "", "", "", "")
    pa = customer_p_alive(state, rules)
    value = customer_clv(state, rules)
    return {
        "customer_id": state.customer_id,
        "tier": state.tier or "",
        "aum_cny": fen_str(state.aum_fen) if state.version else "",
        "recency_days": rfm[0],
        "frequency": str(w.count) if has_tx else "",
        "monetary_cny": fen_str(w.sum_fen) if has_tx else "",
        "r_score": rfm[1],
        "f_score": rfm[2],
        "m_score": rfm[3],
        "rfm_segment": rfm[4],
        "risk_type": valid_risk_type(state, state.updated_at, rules) or "",
        "p_alive": f"{pa:.4f}" if pa is not None else "",
        "clv": f"{value:.2f}" if value is not None else "",
        "preferred_channel": w.preferred_channel(),
        "updated_at": format_ts_utc(state.updated_at) if state.version else "",
        "version": str(state.version),
    }
