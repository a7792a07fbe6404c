"""The demo's bank through the core, without Kafka: it shows every kind of decision.

``demo_config`` (what ``tierstream simulate --demo`` and deploy/demo run) with the demo's
rules (deploy/demo-rules.toml) through the worker's own ``BatchProcessor``, ticks
included, for 40 simulated days -- about 20 s of a default demo. Every kind the core
declares must appear (tests/demo_kinds.py), each for customers whose data earns it, and
nearly every profile must have RFM, P(alive) and CLV. The first simulated day each kind
appears on is printed: it tells how long the real demo must run (test_demo.py).
"""

from __future__ import annotations

import zlib
from collections import Counter
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from state.customer import CustomerState
from state.profile import profile_fields
from state.rules import Rules, load_rules
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.records import RawMessage
from streams.tools.simulator import DAY_MS, DEFAULT_START_MS, Simulator, demo_config
from tests.demo_kinds import every_kind, kinds_of, missing

REPO = Path(__file__).resolve().parents[3]
DEMO_RULES = REPO / "deploy" / "demo-rules.toml"
DAYS = 40
PARTITIONS = 4


@cache
def demo_rules() -> Rules:
    return load_rules(str(DEMO_RULES))


@cache
def run_demo_bank() -> tuple[list[tuple[str, dict[str, Any]]], dict[bytes, bytes]]:
    """(output records with their contract topic, final serialized states)."""
    rules = demo_rules()
    sim = Simulator(demo_config(tick_partitions=PARTITIONS))
    bp = BatchProcessor(rules)
    store: dict[bytes, bytes] = {}
    outputs: list[tuple[str, dict[str, Any]]] = []
    end = DEFAULT_START_MS + DAYS * DAY_MS
    batch: list[RawMessage] = []

    def run() -> None:
        res = bp.process(batch, lambda _p, k: store.get(k))
        store.update({k: b for _p, k, b in res.states})
        outputs.extend((o.topic, orjson.loads(o.value)) for o in res.outputs)
        batch.clear()

    for n, (_label, rec) in enumerate(sim.labelled()):
        if rec.ts_ms > end:
            break
        # any fixed placement works: every partition gets the same ticks
        part = rec.partition if rec.partition is not None else zlib.crc32(rec.key or b"") % 4
        batch.append(RawMessage(rec.topic, part, n, rec.key, rec.value))
        if len(batch) >= 2000:
            run()
    run()
    return outputs, store


def test_the_demo_bank_shows_every_kind_of_decision_within_40_days() -> None:
    outputs, _store = run_demo_bank()
    decisions = [(t, r) for t, r in outputs if t != "dead-letters"]
    first_day: dict[str, float] = {}
    for topic, rec in decisions:
        for group, kinds in kinds_of([(topic, rec)]).items():
            for kind in kinds:
                day = (_ts_ms(rec["ts"]) - DEFAULT_START_MS) / DAY_MS
                first_day.setdefault(f"{group}:{kind}", day)
    print("first simulated day of each kind:")
    for k, d in sorted(first_day.items(), key=lambda kv: kv[1]):
        print(f"  {d:6.1f}  {k}")
    assert not missing(every_kind(demo_rules()), kinds_of(decisions)), first_day
    assert any(t == "dead-letters" for t, _ in outputs)  # ~1% bad records


def test_the_demo_banks_profiles_have_rfm_p_alive_and_clv() -> None:
    _outputs, store = run_demo_bank()
    rules = demo_rules()
    fields = [profile_fields(CustomerState.from_bytes(b), rules) for b in store.values()]
    assert len(fields) == 1000
    for name in ("rfm_segment", "p_alive", "clv"):
        share = sum(bool(f[name]) for f in fields) / len(fields)
        assert share > 0.95, (name, share)
    # RFM is spread, not one cell; some high-value customers are at churn risk.
    segments = Counter(f["rfm_segment"] for f in fields)
    assert len([s for s, n in segments.items() if s and n >= 10]) >= 4, segments
    at_risk = [
        f
        for f in fields
        if f["tier"] != "mass" and f["p_alive"] and float(f["p_alive"]) < rules.churn_p_alive
    ]
    assert at_risk


def _ts_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)
