"""RFM scoring: recency, frequency and monetary value, each scored 1-5, and a segment.

Why fixed cut-offs rather than quintiles: quintiles need the whole customer base, but
the core sees one customer at a time and must be deterministic per customer, so the
cut-offs are configured (calibrate them offline from the base's distribution).
"""

from __future__ import annotations

from state.rules import Rules

SEGMENTS = (
    "champions",
    "loyal",
    "potential",
    "new",
    "at_risk",
    "cant_lose",
    "hibernating",
    "lost",
)


def r_score(recency_days: int, rules: Rules) -> int:
    """5 if recency <= the first cut-off, 4 if <= the second, ... 1 beyond the last."""
    for i, cut in enumerate(rules.rfm_recency_days):
        if recency_days <= cut:
            return 5 - i
    return 1


def f_score(frequency: int, rules: Rules) -> int:
    """1 below the first cut-off, 2 from it, ... 5 from the last."""
    score = 1
    for cut in rules.rfm_frequency:
        if frequency >= cut:
            score += 1
    return score


def m_score(monetary_fen: int, rules: Rules) -> int:
    """Like f_score, on the window's CNY sum (in fen, exact)."""
    score = 1
    for cut in rules.rfm_monetary_fen:
        if monetary_fen >= cut:
            score += 1
    return score


def segment(r: int, f: int, m: int) -> str:
    """Named segment from the scores; the first matching row wins (docs/rules.md)."""
    if r >= 4 and f >= 4:
        return "champions"
    if r >= 4 and f == 1:
        return "new"
    if r >= 3 and f >= 3:
        return "loyal"
    if r >= 3:
        return "potential"
    if f >= 4 and m >= 4:
        return "cant_lose"
    if f >= 3:
        return "at_risk"
    if r == 2:
        return "hibernating"
    return "lost"
