"""Risk type (C1..C5) from a questionnaire score, and assessment validity.

Why the experience cap: a questionnaire alone can rate an investor who has never held
an investment as aggressive; capping inexperienced investors (default: at C3) is the
conservative reading of suitability. The cap and the threshold are configurable.
"""

from __future__ import annotations

from state.customer import CustomerState
from state.rules import DAY_MS, RISK_TYPES, Rules


def risk_type(score: int, experience_years: float, rules: Rules) -> str:
    """score < cut-off 1 -> C1, < 2 -> C2, < 3 -> C3, < 4 -> C4, else C5; capped."""
    level = 1
    for cut in rules.risk_score_cutoffs:
        if score >= cut:
            level += 1
    if experience_years < rules.risk_min_experience_years:
        level = min(level, RISK_TYPES.index(rules.risk_inexperienced_cap) + 1)
    return RISK_TYPES[level - 1]


def valid_risk_type(state: CustomerState, at_ts: int, rules: Rules) -> str | None:
    """The risk type in force at ``at_ts``: assessed at or before it and not expired."""
    if state.risk_type is None or state.assessed_ts < 0:
        return None
    age = at_ts - state.assessed_ts
    if age < 0 or age >= rules.assessment_validity_days * DAY_MS:
        return None
    return state.risk_type
