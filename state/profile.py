"""The Redis profile hash of a customer: flat string fields for other systems to read.

Why strings and empty strings: Redis hashes hold strings; "" means unknown so readers
never have to tell a missing field from a zero. Every time-dependent figure (recency,
P(alive), risk validity) is measured at ``state.updated_at`` -- event time -- so a
replay produces the same profile as the live run.
"""

from __future__ import annotations

from schemas.events import CHANNELS
from schemas.timefmt import format_ts_utc
from state.contribution import clv_profit, contribution_fen, recent_flows_fen
from state.customer import CustomerState
from state.lifetime import customer_clv, customer_p_alive
from state.money import fen_str
from state.rfm import f_score, m_score, r_score, segment
from state.risk import valid_risk_type
from state.rules import Rules
from state.windows import DailyWindows

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
    # customer value and tier policy (issue 22)
    "contribution_cny",
    "clv_profit_cny",
    "tier_override_until",
    "tier_override_by",
    "avg_amount_cny",
    "channel_shares",
    "spend_cny",
    "inflow_cny",
)


def profile_fields(state: CustomerState, rules: Rules) -> dict[str, str]:
    """All PROFILE_FIELDS as strings ("" when unknown). Money with 2 decimals (CNY),
    p_alive with 4 decimals, clv and clv_profit_cny in CNY with 2 decimals;
    channel_shares a JSON object of every channel's share of the window's
    transactions, 4 decimals."""
    w = state.windows
    has_tx = state.tx_days > 0
    inflow, spend = recent_flows_fen(state)
    if has_tx:
        recency = state.day - state.tx_last_day
        basis = rules.rfm_monetary
        monetary = w.sum_fen if basis == "turnover" else spend if basis == "spend" else inflow
        r, f, m = r_score(recency, rules), f_score(w.count, rules), m_score(monetary, rules)
        rfm = (str(recency), str(r), str(f), str(m), segment(r, f, m))
    else:
        rfm = ("", "", "", "", "")
    pa = customer_p_alive(state, rules)
    value = customer_clv(state, rules)
    known = state.version > 0
    contrib = contribution_fen(state, rules) if known else 0
    overridden = state.override_tier is not None
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
        "contribution_cny": fen_str(contrib) if known else "",
        "clv_profit_cny": f"{clv_profit(state, rules, contrib, pa):.2f}" if known else "",
        "tier_override_until": (
            format_ts_utc(state.override_until) if overridden and state.override_until >= 0 else ""
        ),
        "tier_override_by": state.override_by if overridden else "",
        "avg_amount_cny": fen_str(w.average_fen()) if w.count else "",
        "channel_shares": channel_shares_json(w) if w.count else "",
        "spend_cny": fen_str(spend) if known else "",
        "inflow_cny": fen_str(inflow) if known else "",
    }


def channel_shares_json(w: DailyWindows) -> str:
    """Every channel's share of the window's transactions as a JSON object, in CHANNELS
    order, each rounded half-even to 4 decimals: ``{"mobile":0.5000,...}``."""
    n = w.count
    parts = []
    for name, k in zip(CHANNELS, w.channels, strict=True):
        q, r = divmod(k * 10_000, n)
        q += 1 if 2 * r > n or (2 * r == n and q & 1) else 0
        parts.append(f'"{name}":{q // 10_000}.{q % 10_000:04d}')
    return "{" + ",".join(parts) + "}"
