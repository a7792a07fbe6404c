"""End to end on the real broker and Redis: a scripted bank and a randomized bank of a
few hundred customers through a real worker, checked against hand-written
expectations, the replay oracle (tests/integration/oracle.py) and the independent
reference of the rules (tests/reference, through tests/integration/reference_check.py)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis

from state.rules import load_rules
from streams.redis_sink import profile_key, tier_counts_key
from streams.settings import Settings
from streams.tools.simulator import SimConfig, Simulator
from tests.conftest import delete_keys_with_prefix
from tests.integration.harness import (
    WorkerProcess,
    consume_all,
    free_port,
    produce,
    wait_caught_up,
    wait_until,
)
from tests.integration.oracle import compare_decisions, recompute
from tests.integration.reference_check import (
    check_against_reference,
    decision_mismatches,
    read_decisions,
)
from tests.integration.scenario import scripted_bank
from tests.reference import rules_ref
from tests.reference.bank import bank

OUTPUTS = ("tier-changes", "offers", "alerts")


def _outputs(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    return {t: [r["value"] for r in consume_all(settings, t)] for t in (*OUTPUTS, "dead-letters")}


def _run_to_completion(worker: WorkerProcess, settings: Settings) -> None:
    wait_caught_up(settings, 90, "the worker to commit all input", worker)


def _by_customer(records: list[dict[str, Any]], cid: str) -> list[dict[str, Any]]:
    return [r for r in records if r["customer_id"] == cid]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_scripted_bank_end_to_end(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    guarantee: str,
) -> None:
    settings = service_settings
    produce(settings, scripted_bank())
    worker = make_worker(processing_guarantee=guarantee)
    worker.start()
    _run_to_completion(worker, settings)
    out = _outputs(settings)

    # --- hand-written expectations (docs/rules.md) ---------------------------------
    tiers_a = [
        (r["from_tier"], r["to_tier"], r["direction"])
        for r in _by_customer(out["tier-changes"], "cA")
    ]
    assert tiers_a == [
        (None, "affluent", "initial"),
        ("affluent", "hnw", "upgrade"),  # 1.1M
        # 950k is inside the 10% band below 1M: no change; 850k is below 900k:
        ("hnw", "affluent", "downgrade"),
    ]
    tiers_b = [(r["from_tier"], r["to_tier"]) for r in _by_customer(out["tier-changes"], "cB")]
    assert tiers_b == [(None, "private"), ("private", "hnw")]
    assert _by_customer(out["offers"], "cB") == []  # no marketing consent
    alerts = {(r["customer_id"], r["kind"]) for r in out["alerts"]}
    assert ("cA", "high_value_downgrade") in alerts
    assert ("cB", "high_value_downgrade") in alerts
    assert ("cB", "aum_drop") in alerts  # 7M -> 3M within 7 days
    assert ("cC", "large_outflow") in alerts  # 60k of 100k
    assert ("cD", "suitability_mismatch") in alerts  # C1 buying R5
    offers = {(r["customer_id"], r["kind"]) for r in out["offers"]}
    assert ("cA", "wealth_products") in offers
    assert ("cA", "relationship_manager") in offers
    assert ("cD", "sme_credit") in offers  # 80k USD = 568k CNY: an SME entering affluent

    # every bad record is in dead-letters with its reason, none twice
    dl = out["dead-letters"]
    assert len(dl) == 5, dl
    errors = sorted(r["error"].split(":")[0] for r in dl)
    assert errors.count("$") >= 2  # non-JSON and invalid UTF-8
    assert any("currency" in r["error"] for r in dl)
    assert any("customer_id" in r["error"] and "key" in r["error"] for r in dl)

    # --- the oracle: same input, pure core, one batch -------------------------------
    rules = load_rules(settings.rules_path)
    truth = recompute(settings, rules)
    for topic in OUTPUTS:
        expected = [d.to_record() for d in truth.decisions if d.topic == topic]
        cmp = compare_decisions(expected, out[topic], allow_redelivery=False)
        assert cmp.ok, (topic, cmp)

    # --- the independent reference: tiers, offers and alerts by its own code ---------
    walked = check_against_reference(settings)
    assert walked.rejected == ["e-t1"]  # the unknown currency, rejected by both

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    for key, fields in truth.profiles.items():
        assert r.hgetall(profile_key(settings.redis_key_prefix, key.decode())) == fields
    counts = r.hgetall(tier_counts_key(settings.redis_key_prefix))
    expected_counts: dict[str, int] = {}
    for fields in truth.profiles.values():
        if fields["tier"]:
            expected_counts[fields["tier"]] = expected_counts.get(fields["tier"], 0) + 1
    assert {k: int(v) for k, v in counts.items() if int(v)} == expected_counts

    # HTTP lookup and metrics
    status, body = worker.get("/customers/cA")
    assert status == 200 and body["tier"] == "affluent"
    status, _ = worker.get("/customers/nobody")
    assert status == 404
    status, metrics = worker.get("/metrics")
    assert status == 200
    assert (
        'tierstream_dead_letters_total{reason="invalid_json",topic="transactions"} 1.0' in metrics
    )
    assert 'tierstream_tier_changes_total{from_tier="hnw",to_tier="affluent"} 1.0' in metrics


def _restored_records(worker: WorkerProcess) -> float:
    return sum(v for _l, v in worker.metric_samples("tierstream_changelog_restored_records_total"))


@pytest.mark.parametrize(
    ("store", "restore", "guarantee"),
    [
        ("memory://", "bulk", "at_least_once"),  # memory: every start restores it all
        ("rocksdb://", "local", "at_least_once"),  # same data dir: RocksDB holds the state
        ("rocksdb://", "bulk", "at_least_once"),  # data dir lost: the bulk read restores it
        ("rocksdb://", "faust", "at_least_once"),  # --restore-budget-s 0: faust's loop
        # exactly_once discards the local store at start: always a full restore, from
        # the changelog's last stable offset (faust's own highwater there is aiokafka's
        # cached LSO, unknown before the first fetch: it skipped recovery)
        ("rocksdb://", "bulk", "exactly_once"),
        ("rocksdb://", "faust", "exactly_once"),
    ],
)
def test_restart_recovers_state_and_emits_nothing_twice(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    store: str,
    restore: str,
    guarantee: str,
) -> None:
    settings = service_settings.with_overrides(processing_guarantee=guarantee)
    records = scripted_bank()
    half = len(records) // 2
    produce(settings, records[:half])
    worker = make_worker(store=store, processing_guarantee=guarantee)
    worker.start()
    _run_to_completion(worker, settings)
    assert worker.stop() == 0
    first = _outputs(settings)

    produce(settings, records[half:])
    if store == "rocksdb://" and restore != "local" and guarantee == "at_least_once":
        shutil.rmtree(worker.settings.data_dir)
    if restore == "faust":
        worker.extra_args = ["--restore-budget-s", "0"]
    worker.start()
    _run_to_completion(worker, settings)
    restored = _restored_records(worker)
    second = _outputs(settings)
    if restore == "bulk":
        assert restored > 0, "the bulk restore did not run"
    else:
        assert restored == 0, "nothing was to be bulk-restored"

    # nothing processed and committed before the restart was emitted again
    for topic in OUTPUTS:
        ids = [r["event_id"] for r in second[topic]]
        assert len(ids) == len(set(ids)), f"{topic} re-emitted after restart"
        assert {r["event_id"] for r in first[topic]} <= set(ids)
    # and state came back from the changelog: the result equals one uninterrupted run
    truth = recompute(settings, load_rules(settings.rules_path))
    for topic in OUTPUTS:
        expected = [d.to_record() for d in truth.decisions if d.topic == topic]
        cmp = compare_decisions(expected, second[topic], allow_redelivery=False)
        assert cmp.ok, (topic, cmp)
    check_against_reference(settings)
    # and the restored table holds every customer, not only those the second half
    # touched: Redis is emptied, the worker rebuilds every profile from its table
    _assert_profiles_rebuilt_from_table(settings, truth.profiles)


def _assert_profiles_rebuilt_from_table(
    settings: Settings, expected: dict[bytes, dict[str, str]], timeout: float = 60
) -> None:
    r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    delete_keys_with_prefix(r, settings.redis_key_prefix)
    keys = sorted(expected)

    def mismatched() -> list[bytes]:
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(profile_key(settings.redis_key_prefix, key.decode()))
        return [k for k, got in zip(keys, pipe.execute(), strict=True) if got != expected[k]]

    deadline = time.monotonic() + timeout
    while (wrong := mismatched()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not wrong, f"{len(wrong)} of {len(keys)} profiles not rebuilt as expected: {wrong[:5]}"


def test_two_workers_give_the_same_results_as_one(
    service_settings: Settings, make_worker: Callable[..., WorkerProcess]
) -> None:
    settings = service_settings
    w1 = make_worker("w1")
    w2 = make_worker("w2", web_port=free_port())
    w1.start()
    w2.start()
    # both own input partitions (a worker that got none would prove nothing here)
    wait_until(
        lambda: all(w.get("/health")[1]["assigned_partitions"] > 0 for w in (w1, w2)),
        60,
        "both workers to own partitions",
    )
    produce(settings, scripted_bank())
    wait_caught_up(settings, 90, "the workers to commit all input", w1, w2)
    # and both did work: each decided the events of its own partitions
    for w in (w1, w2):
        consumed = sum(v for _l, v in w.metric_samples("tierstream_events_consumed_total"))
        assert consumed > 0, f"{w.name} consumed nothing"
    assert w1.stop() == 0 and w2.stop() == 0
    out = _outputs(settings)
    truth = recompute(settings, load_rules(settings.rules_path))
    for topic in OUTPUTS:
        expected = [d.to_record() for d in truth.decisions if d.topic == topic]
        cmp = compare_decisions(expected, out[topic], allow_redelivery=True)
        assert cmp.ok, (topic, cmp)
    assert len(out["dead-letters"]) == 5
    check_against_reference(settings)


def test_randomized_bank_agrees_with_the_oracle_and_the_reference(
    service_settings: Settings, make_worker: Callable[..., WorkerProcess]
) -> None:
    """A few hundred customers over weeks of event time (tests/reference/bank.py: tier
    lines crossed both ways, loans, currencies, late and out-of-order snapshots,
    redeliveries, equal-time snapshots, unknown currencies) through a real worker:
    every decision and profile as the oracle says, and the tier changes, offers and
    alerts as the independent reference says."""
    settings = service_settings
    events = bank(seed=2026, customers=300, days=35)
    produce(settings, ((t, d["customer_id"].encode(), orjson.dumps(d)) for t, d in events))
    worker = make_worker()
    worker.start()
    wait_caught_up(settings, 180, "the worker to commit the bank", worker)
    decisions = read_decisions(settings)

    truth = recompute(settings, load_rules(settings.rules_path))
    for topic in OUTPUTS:
        expected = [d.to_record() for d in truth.decisions if d.topic == topic]
        problems = decision_mismatches(expected, [x for t, x in decisions if t == topic])
        assert not problems, (topic, problems[:10])
    walked = check_against_reference(settings)
    r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    pipe = r.pipeline(transaction=False)
    keys = sorted(truth.profiles)
    for key in keys:
        pipe.hgetall(profile_key(settings.redis_key_prefix, key.decode()))
    wrong = [k for k, got in zip(keys, pipe.execute(), strict=True) if got != truth.profiles[k]]
    assert not wrong, f"{len(wrong)} of {len(keys)} profiles differ from the oracle: {wrong[:5]}"

    # the bank reached what it is meant to test, or agreement proves little
    ref = rules_ref.result_from_records(decisions)
    changes = [c for cs in ref.tier_changes.values() for c in cs]
    assert {c.direction for c in changes} == {"initial", "upgrade", "downgrade"}
    assert {c.to_tier for c in changes} == set(rules_ref.TIERS)
    assert len({o.kind for o in ref.offers}) >= 4 and len(ref.alerts) > 50
    assert walked.rejected and len(keys) == 300
    print(
        f"\nrandomized bank: {len(events)} events, {len(changes)} tier changes, "
        f"{len(ref.offers)} offers, {len(ref.alerts)} alerts; equal to oracle and reference"
    )


@pytest.mark.parametrize("share", [1.0])
def test_partition_of_only_bad_input_stops_the_worker(
    service_settings: Settings, make_worker: Callable[..., WorkerProcess], share: float
) -> None:
    settings = service_settings
    bad = [("transactions", b"cX", b"garbage %d" % i) for i in range(1100)]
    produce(settings, bad)
    worker = make_worker()
    worker.start(wait=False)
    rc = worker.wait_exit(120)
    assert rc == 3
    assert "were bad" in worker.tail()


def test_batches_stay_within_batch_max_when_the_aligner_releases_a_backlog(
    service_settings: Settings, make_worker: Callable[..., WorkerProcess]
) -> None:
    """A backlog on four topics makes the aligner hold records while it waits for the
    other inputs' fetches, then release several intakes' worth at once; the worker
    must still process (and acknowledge) at most --batch-max events per batch."""
    settings = service_settings
    records = list(Simulator(SimConfig(customers=200, seed=5)).records(limit=4000))
    produce(settings, ((r.topic, r.key, r.value) for r in records))
    worker = make_worker()
    worker.extra_args = ["--batch-max", "100"]
    worker.start()
    _run_to_completion(worker, settings)

    def total(name: str, **labels: str) -> float:
        return sum(
            v
            for lab, v in worker.metric_samples(name)
            if all(lab.get(k) == x for k, x in labels.items())
        )

    assert total("tierstream_events_consumed_total") == len(records)
    batches = total("tierstream_batch_size_events_count")
    assert batches >= len(records) / 100
    assert total("tierstream_batch_size_events_bucket", le="100.0") == batches
