"""Erasure end to end: a real worker on the real broker and Redis.

A customer's state, profile and timers go on an ``erasure-requests`` record; the
changelog forgets it (its last record for the key is a tombstone), the tier counts
follow, the audit topic says who asked, ``/customers`` answers 404; a later event
starts a new customer (an ``initial`` tier change), and a restarted worker, which
rebuilds its state from the changelog, does not bring the old one back. Everything
is compared with the oracle, which recomputes the same inputs (erasures included).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from state.rules import load_rules
from streams.audit import AUDIT_TOPIC
from streams.redis_sink import profile_key, tier_counts_key
from streams.settings import Settings
from streams.topics import changelog_topic
from tests.integration.harness import (
    REPO_ROOT,
    WorkerProcess,
    consume_all,
    produce,
    wait_caught_up,
)
from tests.integration.oracle import compare_decisions, recompute
from tests.integration.scenario import balance, erasure, profile, scripted_bank, txn

AUDIT_SCHEMA = json.loads((REPO_ROOT / "schemas" / "json" / "audit.schema.json").read_text())
TOKEN = "tst_erasure-test-token-0123456789abcdefghij"


def _changelog(settings: Settings) -> dict[bytes, list[bytes | None]]:
    """Every record of the state changelog, by key, in offset order."""
    topic = changelog_topic(settings)
    c = Consumer(
        settings.confluent_config(
            **{
                "group.id": f"cl-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
    )
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in parts:
            _lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > 0:
                ends[p] = hi
        tps = [TopicPartition(topic, p, 0) for p in ends]
        c.assign(tps)
        out: dict[bytes, list[bytes | None]] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                # done when every position passed the end (transaction markers occupy
                # offsets no message is read from, under exactly_once)
                if all(tp.offset >= ends[tp.partition] for tp in c.position(tps)):
                    return out
                continue
            if not m.error():
                out.setdefault(m.key(), []).append(m.value())
        raise AssertionError(f"changelog not read to its end: {ends}")
    finally:
        c.close()


def _profiles(r: redis.Redis, settings: Settings, cid: str) -> dict[str, str]:
    return r.hgetall(profile_key(settings.redis_key_prefix, cid))  # type: ignore[return-value]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_erasure_end_to_end_on_a_real_worker(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    guarantee: str,
    tmp_path: Path,
) -> None:
    settings = service_settings
    monkeypatch.setenv("TIERSTREAM_API_AUTH", "required")
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    monkeypatch.setenv("TIERSTREAM_API_TOKENS", f"crm-test:crm:{digest}")
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    counts = tier_counts_key(settings.redis_key_prefix)

    # --- a bank with cX: a profile (birthday timer), an affluent balance, a transaction
    produce(settings, scripted_bank())
    produce(
        settings,
        [
            profile("pE1", "cX", 1),
            balance("bE1", "cX", "E1", 1, "800000.00"),
            txn("tE1", "cX", "E1", 2, "deposit", "5000.00", balance_after="805000.00"),
        ],
    )
    worker = make_worker(processing_guarantee=guarantee)
    worker.start()
    wait_caught_up(settings, 90, "the bank", worker)
    assert _profiles(r, settings, "cX")["tier"] == "affluent"
    affluent_before = int(r.hget(counts, "affluent") or 0)

    # --- the erasure
    produce(settings, [erasure("erase-cX", "cX", 3, by="privacy-office", reason="DSR-42")])
    wait_caught_up(settings, 60, "the erasure", worker)
    assert _profiles(r, settings, "cX") == {}
    assert int(r.hget(counts, "affluent") or 0) == affluent_before - 1
    status, _body = _get(worker, "/customers/cX")
    assert status == 404
    erased = [s for s in worker.metric_samples("tierstream_erasures_total") if s[1]]
    assert erased == [({"result": "erased"}, 1.0)]
    changelog = _changelog(settings)
    assert changelog[b"cX"][-1] is None  # a tombstone: compaction forgets the customer
    assert all(v is not None for k, vs in changelog.items() if k != b"cX" for v in vs[-1:])
    audits = [a for a in consume_all(settings, AUDIT_TOPIC) if a["value"]["action"] == "erasure"]
    [audit] = audits
    jsonschema.validate(audit["value"], AUDIT_SCHEMA)
    assert audit["key"] == b"cX"
    assert (audit["value"]["principal"], audit["value"]["result"], audit["value"]["reason"]) == (
        "privacy-office",
        "ok",
        "DSR-42",
    )

    # --- a later event: a new customer from nothing
    produce(settings, [balance("bE2", "cX", "E1", 4, "600000.00")])
    wait_caught_up(settings, 60, "the new customer", worker)
    changes = [c["value"] for c in consume_all(settings, "tier-changes")]
    mine = [
        (c["from_tier"], c["to_tier"], c["direction"]) for c in changes if c["customer_id"] == "cX"
    ]
    assert mine == [(None, "affluent", "initial"), (None, "affluent", "initial")]
    assert _profiles(r, settings, "cX")["version"] == "1"

    # --- a restarted worker rebuilds its state from the changelog: not the old one
    assert worker.stop() == 0
    restarted = make_worker("restarted", processing_guarantee=guarantee)
    restarted.start()
    produce(settings, [txn("tE2", "cX", "E1", 5, "deposit", "1000.00", balance_after="601000.00")])
    wait_caught_up(settings, 90, "after the restart", restarted)
    assert _profiles(r, settings, "cX")["version"] == "2"

    # --- and everything equals the oracle, which saw the same inputs
    truth = recompute(settings, load_rules(settings.rules_path))
    assert truth.profiles[b"cX"]["version"] == "2"
    for key, fields in truth.profiles.items():
        assert _profiles(r, settings, key.decode()) == fields, key
    expected = [json.loads(o.value) for o in truth.outputs if o.topic == "tier-changes"]
    actual = [c["value"] for c in consume_all(settings, "tier-changes")]
    cmp = compare_decisions(expected, actual, allow_redelivery=True)
    assert cmp.ok, cmp
    r.close()


def _get(worker: WorkerProcess, path: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        worker.base_url + path, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()
