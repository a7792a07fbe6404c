"""A scripted bank day: every tier move, offer and alert kind, duplicates, late and
out-of-order events, and bad records — as wire bytes for the input topics.

The expected decisions are written out by hand in the tests (from docs/rules.md), and
tests/integration/oracle.py recomputes everything with the pure core from the input
topics, so the worker's output can be compared record by record.
"""

from __future__ import annotations

from typing import Any

import orjson

Record = tuple[str, bytes | None, bytes | None]


def _ts(day: int, hour: int = 10) -> str:
    return f"2026-03-{day:02d}T{hour:02d}:00:00+08:00"


def profile(
    eid: str,
    cid: str,
    day: int,
    consent: bool = True,
    segment: str = "retail",
    birth: str | None = "1980-06-15",
) -> Record:
    v: dict[str, Any] = {
        "event_id": eid,
        "customer_id": cid,
        "ts": _ts(day),
        "segment": segment,
        "marketing_consent": consent,
    }
    if birth:
        v["birth_date"] = birth
    return ("customer-profiles", cid.encode(), orjson.dumps(v))


def assessment(eid: str, cid: str, day: int, score: int, years: float = 5) -> Record:
    v = {
        "event_id": eid,
        "customer_id": cid,
        "ts": _ts(day),
        "score": score,
        "investment_experience_years": years,
    }
    return ("risk-assessments", cid.encode(), orjson.dumps(v))


def balance(
    eid: str,
    cid: str,
    acct: str,
    day: int,
    amount: str,
    currency: str = "CNY",
    product: str = "deposit",
    hour: int = 10,
) -> Record:
    v = {
        "event_id": eid,
        "customer_id": cid,
        "account_id": acct,
        "ts": _ts(day, hour),
        "product": product,
        "balance": amount,
        "currency": currency,
    }
    return ("balances", cid.encode(), orjson.dumps(v))


def txn(
    eid: str,
    cid: str,
    acct: str,
    day: int,
    type_: str,
    amount: str,
    balance_after: str | None = None,
    channel: str = "mobile",
    currency: str = "CNY",
    product_risk: str | None = None,
    hour: int = 10,
) -> Record:
    v: dict[str, Any] = {
        "event_id": eid,
        "customer_id": cid,
        "account_id": acct,
        "ts": _ts(day, hour),
        "type": type_,
        "amount": amount,
        "currency": currency,
        "channel": channel,
    }
    if balance_after is not None:
        v["balance_after"] = balance_after
    if product_risk is not None:
        v["product_risk"] = product_risk
    return ("transactions", cid.encode(), orjson.dumps(v))


def erasure(
    eid: str, cid: str, day: int, hour: int = 10, by: str = "privacy-office", reason: str = ""
) -> Record:
    """A request to erase the customer (topic ``erasure-requests``)."""
    v: dict[str, Any] = {
        "event_id": eid,
        "customer_id": cid,
        "ts": _ts(day, hour),
        "requested_by": by,
    }
    if reason:
        v["reason"] = reason
    return ("erasure-requests", cid.encode(), orjson.dumps(v))


def scripted_bank() -> list[Record]:
    """Records in the order they are produced (per topic, Kafka keeps this order)."""
    r: list[Record] = []
    # A: affluent -> hnw -> holds inside the band -> falls out of it (downgrade)
    r += [profile("a-p1", "cA", 1), assessment("a-r1", "cA", 1, 50)]
    r += [balance("a-b1", "cA", "A1", 2, "600000.00")]
    r += [txn("a-t1", "cA", "A1", 3, "deposit", "500000", "1100000.00")]
    r += [balance("a-b2", "cA", "A1", 5, "950000.00")]  # inside the 10% band: stays hnw
    r += [balance("a-b3", "cA", "A1", 6, "850000.00")]  # below 900k: downgrade
    r += [txn("a-t1", "cA", "A1", 3, "deposit", "500000", "1100000.00")]  # duplicate
    r += [balance("a-b0", "cA", "A1", 4, "2000000.00", hour=9)]  # late snapshot: LWW ignores
    # B: private banking, no consent -> no offers; leaves private -> high_value_downgrade
    r += [profile("b-p1", "cB", 1, consent=False)]
    r += [balance("b-b1", "cB", "B1", 2, "7000000.00", product="wealth")]
    r += [balance("b-b2", "cB", "B1", 4, "3000000.00", product="wealth")]  # -> hnw, aum_drop
    # C: large outflow
    r += [profile("c-p1", "cC", 1)]
    r += [balance("c-b1", "cC", "C1", 2, "100000.00")]
    r += [txn("c-t1", "cC", "C1", 3, "withdrawal", "60000", "40000.00", channel="atm")]
    # D: suitability mismatch (C1 buying R5), SME entering affluent -> sme_credit
    r += [profile("d-p1", "cD", 1, segment="sme"), assessment("d-r1", "cD", 1, 5, years=0)]
    r += [balance("d-b1", "cD", "D1", 2, "80000.00", currency="USD")]  # USD -> CNY via FX
    r += [
        txn(
            "d-t1",
            "cD",
            "D1",
            3,
            "investment_buy",
            "10000",
            "70000.00",
            channel="online",
            currency="USD",
            product_risk="R5",
        )
    ]
    # E: bad records of several kinds
    r += [("transactions", b"cE", b"{not json")]
    r += [("transactions", b"cE", b"\xff\xfe\x00")]
    r += [txn("e-t1", "cE", "E1", 3, "deposit", "100", currency="XYZ")]  # unknown currency
    r += [("balances", b"cE", orjson.dumps({"event_id": "e-b1", "customer_id": "cE"}))]
    r += [("transactions", b"cWRONG", txn("e-t2", "cE", "E1", 3, "deposit", "1")[2])]
    return r
