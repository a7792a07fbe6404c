"""Event factories for the state tests: short calls, explicit money, local days.

T0 is local midnight 2026-01-01 in Asia/Shanghai (the default rules' zone), so
``at(day, hour)`` is the event time ``hour`` o'clock local on day ``day`` after it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from schemas.events import (
    BalanceSnapshot,
    CustomerProfile,
    RiskAssessment,
    Transaction,
)
from state.core import Outcome, apply
from state.customer import CustomerState
from state.decisions import TierChange
from state.rules import Rules, load_rules

T0 = 1767196800000  # 2026-01-01T00:00+08:00
DAY = 86_400_000
HOUR = 3_600_000
RULES = load_rules()
_ids = itertools.count()


def at(day: int, hour: int = 12) -> int:
    return T0 + day * DAY + hour * HOUR


def eid(prefix: str = "e") -> str:
    return f"{prefix}{next(_ids)}"


def tx(
    ts: int,
    amount: str = "100",
    *,
    type: str = "deposit",
    channel: str = "mobile",
    currency: str = "CNY",
    balance_after: str | None = None,
    account: str = "acc1",
    customer: str = "c1",
    product_risk: int | None = None,
    event_id: str | None = None,
) -> Transaction:
    return Transaction(
        event_id=event_id or eid("t"),
        customer_id=customer,
        account_id=account,
        ts=ts,
        type=type,
        amount=Decimal(amount),
        currency=currency,
        channel=channel,
        balance_after=Decimal(balance_after) if balance_after is not None else None,
        product_risk=product_risk,
    )


def bal(
    ts: int,
    balance: str,
    *,
    account: str = "acc1",
    product: str = "deposit",
    currency: str = "CNY",
    customer: str = "c1",
    event_id: str | None = None,
) -> BalanceSnapshot:
    return BalanceSnapshot(
        event_id=event_id or eid("b"),
        customer_id=customer,
        account_id=account,
        ts=ts,
        product=product,
        balance=Decimal(balance),
        currency=currency,
    )


def prof(
    ts: int,
    *,
    segment: str = "retail",
    consent: bool = True,
    birth_date: str | None = "1980-06-15",
    customer: str = "c1",
    event_id: str | None = None,
) -> CustomerProfile:
    return CustomerProfile(
        event_id=event_id or eid("p"),
        customer_id=customer,
        ts=ts,
        segment=segment,
        marketing_consent=consent,
        birth_date=birth_date,
    )


def assess(
    ts: int,
    score: int,
    experience: float = 5.0,
    *,
    customer: str = "c1",
    event_id: str | None = None,
) -> RiskAssessment:
    return RiskAssessment(
        event_id=event_id or eid("r"),
        customer_id=customer,
        ts=ts,
        score=score,
        investment_experience_years=experience,
    )


def run(
    events: Sequence[Any], state: CustomerState | None = None, rules: Rules = RULES
) -> tuple[CustomerState, list[Outcome]]:
    """Apply events in order; return the final state and every outcome."""
    outs: list[Outcome] = []
    for e in events:
        o = apply(state, e, rules)
        state = o.state
        outs.append(o)
    assert state is not None
    return state, outs


def kinds(outcome: Outcome) -> list[str]:
    """Decision kinds of one outcome: 'tier:<to>', offer kind or alert kind."""
    out = []
    for d in outcome.decisions:
        if isinstance(d, TierChange):
            out.append(f"tier:{d.to_tier}")
        else:
            out.append(d.kind)
    return out


def all_kinds(outs: list[Outcome]) -> list[str]:
    return [k for o in outs for k in kinds(o)]


def rules_with(tmp_path, text: str) -> Rules:  # type: ignore[no-untyped-def]
    p = tmp_path / "rules.toml"
    p.write_text(text)
    return load_rules(str(p))
