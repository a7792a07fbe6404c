"""The simulator's data for customer value (issue 22): high salaries, mortgages,
monthly fees, busy customers who go quiet, relationship managers' tier overrides --
each really in the records, each for its own customers, and nothing changed when
they are off (the default bank and the benchmark's data stay as they were)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

import orjson

from schemas.decoder import DecodeError, Decoder
from schemas.events import TOPIC_TIER_OVERRIDES, TierOverride
from streams.tools.simulator import DAY_MS, DEFAULT_START_MS, SimConfig, SimRecord, Simulator

START = DEFAULT_START_MS
VALUE = {
    "payroll_share": 0.2,
    "mortgage_share": 0.2,
    "fee_share": 0.3,
    "slipper_share": 0.1,
    "override_share": 0.1,
}


@cache
def records(**kw: Any) -> tuple[SimRecord, ...]:
    """About 70 simulated days of a 300-customer bank, without faults."""
    cfg = SimConfig(
        customers=300, seed=5, events_per_day=300, duplicate_share=0.0, late_share=0.0, **kw
    )
    out = []
    for rec in Simulator(cfg).records():
        if rec.ts_ms > START + 70 * DAY_MS:
            break
        out.append(rec)
    return tuple(out)


def by_customer(recs: tuple[SimRecord, ...]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    out: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for r in recs:
        if r.key is not None:
            out[r.key.decode()].append((r.topic, orjson.loads(r.value)))
    return out


def test_off_by_default_and_the_default_bank_is_unchanged() -> None:
    """The default bank's records, hashed before issue 22 touched the simulator."""
    h = hashlib.sha256()
    for r in Simulator(SimConfig(customers=500, seed=3, bad_share=0.01)).records(limit=80_000):
        h.update(r.topic.encode() + (r.key or b"") + r.value)
    assert h.hexdigest() == "20b389fa6ccb766042c4f484a3633bd947f7b33b8f27fb526a773b11a6575f3f"
    assert not [r for r in records() if r.topic == TOPIC_TIER_OVERRIDES]


def test_salaries_mortgages_and_fees_are_in_the_records() -> None:
    base, value = by_customer(records()), by_customer(records(**VALUE))
    payroll = mortgage = repaying = fees = 0
    for cid, events in value.items():
        salaries = [
            Decimal(d["amount"])
            for t, d in events
            if t == "transactions" and d["type"] == "deposit" and d["ts"][11:16] == "06:00"
        ]
        if salaries and min(salaries) >= 29_000:
            payroll += 1
        loans = {d["account_id"] for t, d in events if t == "balances" and d["product"] == "loan"}
        if any(a.endswith("-M1") for a in loans):
            mortgage += 1
            repaying += any(
                t == "transactions" and d["type"] == "loan_repayment" for t, d in events
            )
        monthly = [d for t, d in events if t == "transactions" and d["type"] == "fee"]
        if sum(d["ts"][8:10] == "25" and d["ts"][11:13] == "03" for d in monthly) >= 2:
            fees += 1
        # the customer is the same customer: the same accounts, profile and segment
        assert {d.get("segment") for t, d in events if t == "customer-profiles"} == {
            d.get("segment") for t, d in base[cid] if t == "customer-profiles"
        }
    assert 30 <= payroll <= 90 and 20 <= mortgage <= 80 and 60 <= fees <= 130
    assert repaying >= 0.7 * mortgage  # monthly, while the current account has money


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_slippers_are_busy_before_go_live_and_quiet_after() -> None:
    value = by_customer(records(**VALUE))
    slippers = []
    for cid, events in value.items():
        card = [
            _ms(d["ts"]) for t, d in events if t == "transactions" and d["type"] == "card_payment"
        ]
        before = [ts for ts in card if START - 7 * DAY_MS <= ts < START]
        if len(before) >= 6:
            activity = [
                d
                for t, d in events
                if t == "transactions"
                and _ms(d["ts"]) >= START + DAY_MS
                and d["type"] not in ("interest", "fee")
            ]
            if not activity:
                slippers.append(cid)
    assert 15 <= len(slippers) <= 50


def test_overrides_decode_and_name_their_tier_expiry_and_author() -> None:
    decoder = Decoder()
    recs = [r for r in records(**VALUE) if r.topic == TOPIC_TIER_OVERRIDES]
    events = [decoder.decode(TOPIC_TIER_OVERRIDES, r.value) for r in recs]
    assert not [e for e in events if isinstance(e, DecodeError)]
    sets = [e for e in events if isinstance(e, TierOverride) and e.tier is not None]
    clears = [e for e in events if isinstance(e, TierOverride) and e.tier is None]
    assert 15 <= len(sets) <= 50 and 3 <= len(clears) < len(sets)
    for e in sets:
        assert e.until is not None and 8 * DAY_MS <= e.until - e.ts <= 20 * DAY_MS
        assert e.set_by.startswith("rm-") and e.reason
    for r in recs:
        assert r.key == orjson.loads(r.value)["customer_id"].encode()
    first = min(e.ts for e in sets)
    assert START < first < START + 12 * DAY_MS
