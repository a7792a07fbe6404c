"""A rules version published while two workers run under load: taken up without a
restart, the customers between the old and the new floor re-tiered (and no others),
every decision stamped by the version in force at its time; then a version the workers
cannot load, refused with the previous version kept (metric and log).

Real broker and Redis, the worker as users run it (``tierstream worker``), the version
published the way operators do (``streams.rules_topic.publish``, what ``tierstream rules
publish`` calls). Issue 21, "Done when", first item.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from schemas.events import TOPIC_RULES
from schemas.timefmt import format_ts_utc
from state.rules import load_rules
from streams.rules_log import RulesRecord, encode_record, parse_ts
from streams.rules_topic import DEFAULT_LEAD_MS, publish, read_history
from streams.settings import Settings
from tests.integration.harness import (
    WorkerProcess,
    consume_all,
    free_port,
    produce,
    wait_caught_up,
    wait_until,
)

NEW_RULES = """
version = "2027.01-it"
[tiers]
affluent = "700000"
"""
#: Loads nowhere: a floor that is not money (a newer publisher's typo, written past
#: the publish command's check straight onto the topic).
BAD_RULES = """
version = "2027.02-it"
[tiers]
affluent = "seven hundred thousand"
"""


def _balance(cid: str, n: int, amount: str, ts_ms: int) -> tuple[str, bytes, bytes]:
    value = {
        "event_id": f"{cid}-b{n}",
        "customer_id": cid,
        "account_id": f"{cid}-inv",
        "ts": format_ts_utc(ts_ms),
        "product": "fund",
        "balance": amount,
        "currency": "CNY",
    }
    return ("balances", cid.encode(), orjson.dumps(value))


class LiveLoad(threading.Thread):
    """Balances stamped at the wall clock for a few customers, flipping them between
    hnw (2M) and private (7M) with every event: a tier change per event, on tiers the
    new floor does not touch, so each decision shows the version it was made under."""

    def __init__(self, settings: Settings, customers: list[str], rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.customers, self.rate = settings, customers, rate
        self.produced = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.join(60)
        assert self.error is None, self.error

    def run(self) -> None:
        try:
            p = Producer(self.settings.producer_config(**{"linger.ms": 5}))
            rng = random.Random(21)
            while not self._stopping.is_set():
                cid = rng.choice(self.customers)
                amount = "2000000" if self.produced % 2 else "7000000"
                topic, key, value = _balance(cid, self.produced, amount, int(time.time() * 1000))
                p.produce(self.settings.topic(topic), key=key, value=value)
                p.poll(0)
                self.produced += 1
                time.sleep(1 / self.rate)
            assert p.flush(60) == 0
        except BaseException as exc:  # surfaced by stop()
            self.error = exc


def _decisions(settings: Settings) -> list[dict[str, Any]]:
    return [
        r["value"] for t in ("tier-changes", "offers", "alerts") for r in consume_all(settings, t)
    ]


def _sample(worker: WorkerProcess, name: str, **labels: str) -> float:
    return sum(
        v
        for got, v in worker.metric_samples(name)
        if all(got.get(k) == want for k, want in labels.items())
    )


def _refused_once(worker: WorkerProcess) -> bool:
    return _sample(worker, "tierstream_rules_refused_total", reason="load_error") == 1


@pytest.mark.timeout(600)
def test_two_workers_take_up_a_published_version_under_load(
    service_settings: Settings, make_worker: Callable[..., WorkerProcess]
) -> None:
    settings = service_settings
    old_version = load_rules(None).version
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    # Who must move and who must stay when the affluent floor rises from 500k to 700k
    # (a downgrade below 700k x 0.9 = 630k): 600k moves to mass, 650k stays inside the
    # band, 800k stays affluent, 300k stays mass.
    groups = {"move": "600000", "band": "650000", "high": "800000", "mass": "300000"}
    customers = {g: [f"{g}-{i:03d}" for i in range(30)] for g in groups}
    records = [
        _balance(cid, 0, groups[g], an_hour_ago + i)
        for g, cids in customers.items()
        for i, cid in enumerate(cids)
    ]
    produce(settings, records)
    w1 = make_worker("w1", tick_interval=1)
    w2 = make_worker("w2", tick_interval=1, web_port=free_port())
    w1.start()
    w2.start()
    wait_until(
        lambda: all(
            w.is_ready() and w.get("/health")[1]["assigned_partitions"] > 0 for w in (w1, w2)
        ),
        90,
        "both workers to own partitions",
    )
    wait_caught_up(settings, 90, "the workers to commit the opening balances", w1, w2)
    load = LiveLoad(settings, [f"load-{i:02d}" for i in range(12)], rate=40)
    load.start()
    time.sleep(3)  # decisions under the old version while the load runs

    published = publish(settings, NEW_RULES, "new.toml", label="affluent floor 700k", by="it")
    new_version = published.record.version
    effective = published.record.effective_from
    assert published.entry.status == "accepted"
    assert new_version == "2027.01-it"
    assert effective - published.record.published_at == DEFAULT_LEAD_MS

    def moved() -> set[str]:
        return {
            r["value"]["customer_id"]
            for r in consume_all(settings, "tier-changes")
            if r["value"]["cause_event_id"] == f"rules:{new_version}"
        }

    wait_until(lambda: set(customers["move"]) <= moved(), 90, "the re-tier of the 600k customers")
    time.sleep(4)  # more ticks and load after the switch: nothing else may move
    load.stop()
    wait_caught_up(settings, 90, "the workers to commit the load", w1, w2)

    changes = [r["value"] for r in consume_all(settings, "tier-changes")]
    by_rules = [c for c in changes if c["cause_event_id"].startswith("rules:")]
    # exactly the customers between the floors, each once, down to mass, under the new
    # version, at the instant it takes effect
    assert sorted(c["customer_id"] for c in by_rules) == sorted(customers["move"])
    for c in by_rules:
        assert (c["from_tier"], c["to_tier"], c["direction"]) == ("affluent", "mass", "downgrade")
        assert c["rules_version"] == new_version
        assert parse_ts(c["ts"]) == effective
        assert c["reason"]["threshold_cny"] == "630000.00", c  # 700k less the 10% band
    # nobody else changed tier after their opening balance
    for g in ("band", "high", "mass"):
        theirs = [c for c in changes if c["customer_id"] in customers[g]]
        assert sorted(c["customer_id"] for c in theirs) == customers[g]
        assert {c["direction"] for c in theirs} == {"initial"}
    # every decision carries the version in force at its time, and the load was decided
    # under both
    decisions = _decisions(settings)
    for d in decisions:
        want = new_version if parse_ts(d["ts"]) >= effective else old_version
        assert d["rules_version"] == want, d
    load_versions = {d["rules_version"] for d in decisions if d["customer_id"].startswith("load-")}
    assert load_versions == {old_version, new_version}
    assert load.produced > 200
    # both workers took it up (each owns partitions of its own) without a restart
    for w in (w1, w2):
        assert w.starts == 1 and w.proc is not None and w.proc.poll() is None
        assert _sample(w, "tierstream_rules_version_info", version=new_version) == 1
        assert _sample(w, "tierstream_rules_versions") == 1
        assert "rules: version 2027.01-it takes effect from" in w.log_path.read_text()

    # --- a version the workers cannot load: refused, the one before stays ----------------
    now = int(time.time() * 1000)
    bad = RulesRecord(
        version="2027.02-it",
        label="not money",
        effective_from=now + DEFAULT_LEAD_MS,
        published_by="it",
        published_at=now,
        toml=BAD_RULES,
    )
    key, value = encode_record(bad)
    p = Producer(settings.producer_config(**{"linger.ms": 0}))
    p.produce(settings.topic(TOPIC_RULES), key=key, value=value, partition=0)
    assert p.flush(30) == 0
    history = read_history(settings, load_rules(None))
    assert [(e.version, e.status) for e in history.entries] == [
        (new_version, "accepted"),
        ("2027.02-it", "refused"),
    ]
    assert "does not load" in history.entries[1].reason
    # a live event after the bad version's time is still decided by the new version
    time.sleep(DEFAULT_LEAD_MS / 1000 + 1)
    now = int(time.time() * 1000)
    produce(
        settings,
        [
            _balance("load-00", 10**6, "2000000", now),
            _balance("load-00", 10**6 + 1, "7000000", now + 1),
        ],
    )
    for w in (w1, w2):
        wait_until(
            functools.partial(_refused_once, w),
            60,
            f"{w.name} to refuse the version it cannot load",
        )
        assert _sample(w, "tierstream_rules_version_info", version=new_version) == 1
        assert _sample(w, "tierstream_rules_version_info", version="2027.02-it") == 0
        log = w.log_path.read_text()
        assert "rules: record 0:1 (version 2027.02-it) refused, the versions before it stay" in log
    wait_caught_up(settings, 90, "the workers to commit the last event", w1, w2)
    last = [
        d
        for d in _decisions(settings)
        if d["customer_id"] == "load-00"
        and d.get("cause_event_id") in (f"load-00-b{10**6}", f"load-00-b{10**6 + 1}")
    ]
    assert last and {d["rules_version"] for d in last} == {new_version}
    for w in (w1, w2):
        assert w.proc is not None and w.proc.poll() is None  # refused, not crashed
