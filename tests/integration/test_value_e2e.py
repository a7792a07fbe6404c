"""Customer value and tier policy end to end (issue 22), on a real worker, the real
broker and Redis: contribution in the profile and the 360° view, the Pareto gauges on
profit, tiers by behaviour, the two kinds of consent, relationship managers' overrides
(audited, expiring through the ticks, bad ones dead-lettered), RFM slipping and the
channel offers -- with the hand-worked figures of docs/value-models.md, and every
decision equal to the oracle's record for record."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from state.rules import load_rules
from streams.concentration import value_concentration
from streams.settings import Settings
from tests.integration.harness import (
    WorkerProcess,
    consume_all,
    produce,
    wait_caught_up,
    wait_until,
)
from tests.integration.oracle import compare_decisions, recompute
from tests.integration.test_care_e2e import daily_ticks, produce_ticks

DECISIONS = ("tier-changes", "offers", "alerts")
RULES = """
[tiers.behaviour.affluent]
monthly_inflow_cny = "30000"
"""
Record = tuple[str, bytes | None, bytes | None]


def ts(month: int, day: int, hour: int = 10) -> str:
    return f"2026-{month:02d}-{day:02d}T{hour:02d}:00:00+08:00"


def _rec(topic: str, cid: str, doc: dict[str, Any]) -> Record:
    return (topic, cid.encode(), orjson.dumps({"customer_id": cid, **doc}))


def profile(cid: str, when: str, consent: bool = True, **extra: Any) -> Record:
    doc = {"event_id": f"{cid}-p", "ts": when, "segment": "retail", "marketing_consent": consent}
    return _rec("customer-profiles", cid, {**doc, **extra})


def balance(cid: str, acct: str, when: str, amount: str, product: str = "deposit") -> Record:
    doc = {"event_id": f"{cid}-b-{acct}-{when}", "account_id": acct, "ts": when,
           "product": product, "balance": amount, "currency": "CNY"}  # fmt: skip
    return _rec("balances", cid, doc)


def txn(cid: str, n: int, when: str, kind: str, amount: str, channel: str = "pos") -> Record:
    doc = {"event_id": f"{cid}-t{n}", "account_id": f"{cid}-D1", "ts": when, "type": kind,
           "amount": amount, "currency": "CNY", "channel": channel}  # fmt: skip
    return _rec("transactions", cid, doc)


def override(cid: str, n: int, when: str, tier: str | None, **extra: Any) -> Record:
    doc = {"event_id": f"{cid}-o{n}", "ts": when, "tier": tier, "set_by": "rm-2",
           "reason": "assets at another branch", **extra}  # fmt: skip
    return _rec("tier-overrides", cid, doc)


def inputs() -> list[Record]:
    r: list[Record] = []
    # vW: the worked example of docs/value-models.md (14,028.00 CNY a year)
    r += [profile("vW", ts(1, 1, 9))]
    r += [balance("vW", "vW-D1", ts(1, 1, 9), "200000.00")]
    r += [balance("vW", "vW-F1", ts(1, 1, 9), "300000.00", "fund")]
    r += [balance("vW", "vW-L1", ts(1, 1, 9), "500000.00", "loan")]
    for n, (m, d, kind, amount) in enumerate(
        [
            (1, 5, "card_payment", "4000.00"),
            (1, 10, "deposit", "30000.00"),
            (1, 20, "card_payment", "6000.00"),
            (1, 25, "fee", "50.00"),
            (2, 3, "card_payment", "8000.00"),
            (2, 10, "deposit", "30000.00"),
            (2, 15, "transfer_out", "5000.00"),
            (2, 25, "fee", "25.00"),
            (3, 10, "card_payment", "333.33"),
        ]
    ):
        r += [txn("vW", n, ts(m, d, 12), kind, amount, "mobile" if n % 3 else "pos")]
    # vR / vO: hnw; no marketing consent / a service opt-out
    r += [profile("vR", ts(3, 1, 9), consent=False), balance("vR", "vR-D1", ts(3, 1), "2000000")]
    r += [profile("vO", ts(3, 1, 9), service_contact_opt_out=True)]
    r += [balance("vO", "vO-D1", ts(3, 1), "2000000")]
    # vT: mass, overridden to private until 20 March; vC: hnw override cleared
    r += [balance("vT", "vT-D1", ts(3, 1), "100000")]
    r += [override("vT", 1, ts(3, 5), "private", until="2026-03-20T00:00:00+08:00")]
    r += [balance("vC", "vC-D1", ts(3, 1), "100000")]
    r += [override("vC", 1, ts(3, 2), "hnw"), override("vC", 2, ts(3, 8), None)]
    # vK: affluent, overridden to hnw until the end of June (still in force at the end)
    r += [balance("vK", "vK-D1", ts(3, 1), "700000")]
    r += [override("vK", 1, ts(3, 6), "hnw", until="2026-06-30T00:00:00+08:00")]
    # vB: a bad override: until before ts
    r += [override("vB", 1, ts(3, 6), "hnw", until="2026-03-01T00:00:00+08:00")]
    # vF: frequent in February, quiet from 20 February: its recency slips on 23 March
    r += [balance("vF", "vF-D1", ts(1, 1), "2000000")]
    r += [txn("vF", n, ts(2, 13 + n), "card_payment", "100.00") for n in range(8)]
    # vP: large transfers at the branch: priority branch service
    r += [profile("vP", ts(3, 1, 9), birth_date="1960-01-01")]
    r += [txn("vP", n, ts(3, 2 + n), "transfer_out", "60000.00", "branch") for n in range(5)]
    # vS: a salary of 35,000 on the 10th: affluent by behaviour on 10 February
    r += [balance("vS", "vS-D1", ts(1, 1), "50000")]
    r += [txn("vS", n, ts(m, 10), "transfer_in", "35000.00", "online") for n, m in ((0, 1), (1, 2))]
    return r


@pytest.fixture
def value_settings(service_settings: Settings, tmp_path: Path) -> Settings:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    return service_settings.with_overrides(rules_path=str(rules))


def _by(records: list[dict[str, Any]], cid: str) -> list[dict[str, Any]]:
    return [r for r in records if r["customer_id"] == cid]


@pytest.mark.integration
def test_customer_value_and_tier_policy_end_to_end(
    value_settings: Settings, make_worker: Callable[..., WorkerProcess]
) -> None:
    settings = value_settings
    produce(settings, inputs())
    produce_ticks(settings, daily_ticks(settings, datetime(2026, 3, 1, 12, tzinfo=UTC), 36))
    worker = make_worker(rules_path=settings.rules_path)
    worker.extra_args = ["--pareto-interval", "1"]
    worker.start()
    wait_caught_up(settings, 120, "the worker to commit all input", worker)
    got = {t: [r["value"] for r in consume_all(settings, t)] for t in DECISIONS}
    audit = [r["value"] for r in consume_all(settings, "audit")]

    # 1, 2. contribution and CLV on profit, in the 360° view (the HTTP API reads Redis)
    status, view = worker.get("/customers/vW")
    assert status == 200
    assert view["contribution_cny"] == "14028.00"
    assert view["clv_profit_cny"] == "12418.97"
    assert (view["spend_cny"], view["inflow_cny"]) == ("23333.33", "60000.00")
    assert view["avg_amount_cny"] == "11904.76"  # 83,333.33 over 7 (fees do not count)
    assert orjson.loads(view["channel_shares"])["pos"] == 0.2857  # 2 of 7
    assert view["clv"] != "" and view["clv"] != view["clv_profit_cny"]  # turnover-based

    # 3. behaviour: affluent by salary, the criterion named
    (up,) = [t for t in _by(got["tier-changes"], "vS") if t["direction"] == "upgrade"]
    assert up["to_tier"] == "affluent" and up["reason"]["criterion"] == "monthly_inflow"
    assert up["reason"]["criterion_cny"] == "35000.00" and up["ts"].startswith("2026-02-10")

    # 4. consent: reviews without marketing consent, none after a service opt-out
    def kinds(cid: str) -> list[tuple[str, str]]:
        return [(o["kind"], o["purpose"]) for o in _by(got["offers"], cid)]

    assert ("relationship_review", "service") in kinds("vR")
    assert ("relationship_manager", "marketing") not in kinds("vR")
    assert kinds("vO") == [("relationship_manager", "marketing")]

    # 5. overrides: set, expired through the ticks, cleared, in force, audited, bad
    until = datetime.fromisoformat("2026-03-20T00:00:00+08:00")
    expiry = f"override_expiry:{int(until.timestamp() * 1000)}"
    assert [(t["from_tier"], t["to_tier"], t["direction"], t["cause_event_id"]) for t in _by(
        got["tier-changes"], "vT"
    )] == [
        (None, "mass", "initial", "vT-b-vT-D1-" + ts(3, 1)),
        ("mass", "private", "override", "vT-o1"),
        ("private", "mass", "downgrade", expiry),
    ]  # fmt: skip
    assert [t["direction"] for t in _by(got["tier-changes"], "vC")] == [
        "initial",
        "override",
        "downgrade",
    ]
    actions = sorted((a["customer_id"], a["action"], a["result"]) for a in audit
                     if a["action"].startswith("tier.override"))  # fmt: skip
    assert actions == [
        ("vC", "tier.override.clear", "ok"),
        ("vC", "tier.override.set", "ok"),
        ("vK", "tier.override.set", "ok"),
        ("vT", "tier.override.expire", "ok"),
        ("vT", "tier.override.set", "ok"),
    ]
    assert all(a["principal"] == "rm-2" for a in audit if a["action"].startswith("tier.override"))
    status, vk = worker.get("/customers/vK")
    assert (vk["tier"], vk["tier_override_by"]) == ("hnw", "rm-2")
    assert vk["tier_override_until"] == "2026-06-29T16:00:00.000Z"
    dead = [r["value"] for r in consume_all(settings, "dead-letters")]
    (bad,) = [d for d in dead if d["source_topic"].endswith("tier-overrides")]
    assert bad["error"].startswith("$.until: must be after ts")

    # 6. RFM: the frequent customer's recency slipped on 23 March
    (slip,) = [a for a in _by(got["alerts"], "vF") if a["kind"] == "rfm_slipping"]
    assert slip["reason"]["trigger"] == "rfm_slip:2026-03-23"
    assert (slip["severity"], slip["purpose"], slip["reason"]["segment"]) == (
        "critical",
        "service",
        "at_risk",
    )

    # 7. channels: priority branch service on the fifth large branch transfer
    (branch,) = [o for o in _by(got["offers"], "vP") if o["kind"] == "branch_priority"]
    assert branch["cause_event_id"] == "vP-t4" and branch["reason"]["branch_share"] == "1.0000"

    # every decision and every override audit is the oracle's, record for record
    truth = recompute(settings, load_rules(settings.rules_path))
    for topic in DECISIONS:
        expected = [d.to_record() for d in truth.decisions if d.topic == topic]
        cmp = compare_decisions(expected, got[topic], allow_redelivery=False)
        assert cmp.ok, (topic, cmp)
    expected = [d.to_record() for d in truth.decisions if d.topic == "audit"]
    core_audits = [a for a in audit if a["action"].startswith("tier.override")]
    assert compare_decisions(expected, core_audits, allow_redelivery=False).ok

    # the Pareto gauges on profit: the worker's equal a scan of the same profiles
    async def scan() -> Any:
        client = aioredis.from_url(settings.redis_url)
        try:
            return await value_concentration(client, settings.redis_key_prefix)
        finally:
            await client.aclose()

    found = asyncio.run(scan())
    assert found.contribution_top20_share > 0.5

    def gauge() -> float | None:
        samples = worker.metric_samples("tierstream_contribution_top20_share")
        return samples[0][1] if samples else None

    wait_until(
        lambda: gauge() == pytest.approx(found.contribution_top20_share), 30, "the Pareto gauge"
    )
    by_tier = {lab["tier"]: v for lab, v in worker.metric_samples("tierstream_contribution_cny")}
    for tier, total in found.contribution_by_tier.items():
        assert by_tier[tier] == pytest.approx(float(total))
    assert Decimal(str(by_tier["hnw"])) > 0
