"""Reliability against an oracle: kills, rebalances, outages and bad input, on the real services.

Each scenario recomputes the truth from the input topics with the pure core
(tests/integration/oracle.py) and compares the worker's outputs (read_committed), its
Redis profiles and Redis tier counts with it, reporting lost, duplicated and wrong
decisions separately; it also checks that the data produced the decisions it must
(every customer's initial tier, and a minimum of each kind), so a worker that decides
nothing cannot pass. Workers run with their default alignment waits.

Faults happen under load: the producer (tests/integration/load.py) runs until the test
stops it after its last fault, and every kill, rebalance and outage asserts that the
producer is still producing and the group has uncommitted input.

Short forms run in CI; ``TIERSTREAM_RELIABILITY_SCALE=5`` scales events, customers and
rates, and tests marked ``slow`` are the long forms (``pytest -m slow``). Figures are
printed and appended to ``$TIERSTREAM_RELIABILITY_REPORT`` (JSON lines) when it is set.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from schemas.decoder import Decoder
from state.rules import load_rules
from streams.redis_sink import profile_key, tier_counts_key
from streams.settings import Settings
from streams.tools.simulator import SimConfig, Simulator
from streams.topics import create_topics
from tests.integration.harness import (
    WorkerProcess,
    consume_all,
    free_port,
    group_lag,
    group_offsets,
    produce,
    stop_together,
    wait_caught_up,
    wait_until,
)
from tests.integration.load import LoadProducer, joining_bank, sim_stream
from tests.integration.oracle import compare_decisions, read_inputs, recompute
from tests.integration.reference_check import check_against_reference
from tests.integration.scenario import scripted_bank

Record = tuple[str, bytes | None, bytes | None]
OUTPUTS = ("tier-changes", "offers", "alerts")
SCALE = float(os.environ.get("TIERSTREAM_RELIABILITY_SCALE", "1"))
#: The log line of every release that stopped waiting for an input (streams/app.py).
GAVE_UP = "aligner: gave up waiting"


def report(name: str, **figures: Any) -> None:
    line = {"scenario": name, **figures}
    print(f"\nRELIABILITY {json.dumps(line)}")
    path = os.environ.get("TIERSTREAM_RELIABILITY_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


def sim_records(customers: int, events: int, seed: int = 7, **kw: Any) -> list[Record]:
    cfg = SimConfig(customers=customers, seed=seed, late_share=0.0, **kw)
    return [(r.topic, r.key, r.value) for r in Simulator(cfg).records(limit=events)]


def sim_minimum(customers: int) -> dict[str, int]:
    """Decisions the simulator's bank must produce once all ``customers`` have onboarded
    and a few thousand events followed (measured: 300 customers, 3,000 events give 92
    upgrades, 55 wealth-product and 15 relationship-manager offers, 77 large outflows;
    the floors leave room for other seeds)."""
    return {
        "tier-changes/upgrade": customers // 5,
        "offers/wealth_products": customers // 10,
        "offers/relationship_manager": max(1, customers // 60),
        "alerts/large_outflow": customers // 10,
    }


#: What the joining bank must produce (measured: 247 customers, 15,000 events give 91
#: downgrades, 167 large outflows, 79 AUM drops, 56 high-value downgrades, 22 upgrades).
JOINING_MINIMUM = {
    "tier-changes/downgrade": 10,
    "tier-changes/upgrade": 3,
    "alerts/large_outflow": 20,
    "alerts/aum_drop": 10,
    "alerts/high_value_downgrade": 5,
}


def aligner_timeouts(worker: WorkerProcess) -> dict[str, float]:
    """The worker's ``tierstream_aligner_timeouts_total`` by reason."""
    return {
        labels["reason"]: value
        for labels, value in worker.metric_samples("tierstream_aligner_timeouts_total")
    }


def gave_up_lines(*workers: WorkerProcess) -> int:
    """Releases that stopped waiting, from the logs of every run of these workers (the
    metric of a killed worker is gone; its log is not)."""
    return sum(
        w.log_path.read_text(errors="replace").count(GAVE_UP)
        for w in workers
        if w.log_path.exists()
    )


def wait_done(settings: Settings, *workers: WorkerProcess, timeout: float = 240) -> None:
    wait_caught_up(settings, timeout, "the group to commit all input", *workers)


def outputs(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    return {t: [r["value"] for r in consume_all(settings, t, 60)] for t in OUTPUTS}


def decision_kinds(got: Mapping[str, list[dict[str, Any]]]) -> Counter[str]:
    """``topic/kind`` -> number of distinct decisions (a tier change's kind is its
    direction; a redelivered copy counts once)."""
    kinds: Counter[str] = Counter()
    for topic, records in got.items():
        for r in {r["event_id"]: r for r in records}.values():
            kinds[f"{topic}/{r.get('direction') or r.get('kind')}"] += 1
    return kinds


def customers_with_applied_aum_events(settings: Settings) -> set[bytes]:
    """Keys of customers with at least one balance or transaction that decodes and was
    not dead-lettered. Each must have exactly one initial tier change (docs/rules.md),
    whatever the tier rules: computed without the core, from the inputs and the
    dead letters."""
    dead = {
        (d["value"]["source_topic"], d["value"]["partition"], d["value"]["offset"])
        for d in consume_all(settings, "dead-letters", 60)
    }
    decoder = Decoder(max_future_skew_ms=300_000)
    out: set[bytes] = set()
    for m in read_inputs(settings):
        if m.topic not in ("balances", "transactions") or m.key is None:
            continue
        if (m.source_topic, m.partition, m.offset) in dead:
            continue
        ev = decoder.decode(m.topic, m.value)
        if getattr(ev, "customer_id", None) == m.key.decode(errors="replace"):
            out.add(m.key)
    return out


def check_against_oracle(
    settings: Settings,
    redis_url: str,
    *,
    allow_redelivery: bool,
    minimum: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Assert outputs, Redis profiles and Redis tier counts equal the oracle, and that
    the decisions the data must produce are there; return figures."""
    truth = recompute(settings, load_rules(settings.rules_path))
    got = outputs(settings)
    figures: dict[str, Any] = {
        "decisions": len(truth.decisions),
        "lost": 0,
        "duplicates": 0,
        "wrong": 0,
    }
    for topic in OUTPUTS:
        expected = [d.to_record() for d in truth.decisions if d.topic == topic]
        cmp = compare_decisions(expected, got[topic], allow_redelivery=allow_redelivery)
        copies = Counter(r["event_id"] for r in got[topic])
        figures["duplicates"] += sum(n - 1 for n in copies.values())
        figures["lost"] += len(cmp.lost)
        figures["wrong"] += len(cmp.wrong) + len(cmp.duplicated)
        # a redelivered output is byte-for-byte its first copy
        first: dict[str, dict[str, Any]] = {}
        for r in got[topic]:
            assert first.setdefault(r["event_id"], r) == r, f"{topic}: copies differ"
        if not cmp.ok:
            lost = [r for r in expected if r["event_id"] in set(cmp.lost)]
            extra = [r for r in got[topic] if f"unexpected:{r['event_id']}" in set(cmp.wrong)]
            raise AssertionError(
                f"{topic}: {cmp}; lost records: {lost[:3]}; unexpected records: {extra[:3]}"
            )
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    pipe = r.pipeline(transaction=False)
    keys = list(truth.profiles)
    for key in keys:
        pipe.hgetall(profile_key(settings.redis_key_prefix, key.decode()))
    stored = pipe.execute()
    diffs = [
        (k, {f: (v, s.get(f)) for f, v in truth.profiles[k].items() if s.get(f) != v})
        for k, s in zip(keys, stored, strict=True)
        if s != truth.profiles[k]
    ]
    assert not diffs, (
        f"{len(diffs)} Redis profiles differ, e.g. (field: (oracle, Redis)) {diffs[:3]}"
    )
    figures["profiles"] = len(keys)
    # the tier counts the CRM reads (and the customers gauge) match the profiles
    counts = {
        t: int(n)
        for t, n in r.hgetall(tier_counts_key(settings.redis_key_prefix)).items()
        if int(n) != 0
    }
    want = Counter(p["tier"] for p in truth.profiles.values() if p.get("tier"))
    assert counts == dict(want), f"Redis tier counts {counts}, oracle {dict(want)}"
    figures["tiers"] = dict(sorted(want.items()))
    # decisions the data must produce: a worker (or a core) that decides nothing fails
    kinds = decision_kinds(got)
    aum_customers = customers_with_applied_aum_events(settings)
    assert aum_customers, "no customer had a balance or transaction applied"
    assert kinds["tier-changes/initial"] == len(aum_customers), (
        f"{kinds['tier-changes/initial']} initial tier changes for "
        f"{len(aum_customers)} customers with balances or transactions"
    )
    short = {k: (kinds[k], n) for k, n in (minimum or {}).items() if kinds[k] < n}
    assert not short, f"too few decisions (got, at least): {short}; all: {dict(kinds)}"
    figures["kinds"] = dict(sorted(kinds.items()))
    # the independent reference (tests/reference/rules_ref.py, no state/ or streams/
    # code): the oracle replays through the worker's own pipeline and would agree with
    # a wrong rule; the reference would not
    walked = check_against_reference(settings, redelivered=allow_redelivery)
    figures["reference_events"] = len(walked.decoded)
    return figures


def two_workers(
    make_worker: Callable[..., WorkerProcess], guarantee: str
) -> tuple[WorkerProcess, WorkerProcess]:
    """Two RocksDB workers (not started), the production store, with the worker's
    default alignment waits."""
    w1 = make_worker("w1", processing_guarantee=guarantee, store="rocksdb://")
    w2 = make_worker("w2", processing_guarantee=guarantee, web_port=free_port(), store="rocksdb://")
    return w1, w2


def check_guarantee(
    settings: Settings, redis_url: str, guarantee: str, minimum: Mapping[str, int] | None
) -> dict[str, Any]:
    """``check_against_oracle`` for the guarantee; exactly_once also allows no copies."""
    figures = check_against_oracle(
        settings, redis_url, allow_redelivery=guarantee == "at_least_once", minimum=minimum
    )
    if guarantee == "exactly_once":
        assert figures["duplicates"] == 0, "read_committed saw duplicates under exactly_once"
    return figures


def assert_in_flight(settings: Settings, load: LoadProducer, what: str) -> int:
    """The fault about to happen hits a loaded group: the producer is still producing
    and the group has input it has not committed. Returns that input (records)."""
    assert load.producing, f"{what}: the load producer is no longer producing ({load.error})"
    inputs = set(settings.input_topics)
    lag = sum(n for (topic, _p), n in group_lag(settings).items() if topic in inputs)
    assert lag > 0, f"{what}: the group has no uncommitted input (an idle group)"
    return lag


def restart_on_empty_data_dir(worker: WorkerProcess) -> float:
    """kill -9, wipe the local state, start again (state comes from the changelog);
    returns seconds from the kill to ready."""
    worker.kill()
    t0 = time.monotonic()
    data = Path(worker.settings.data_dir)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    worker.start()
    return time.monotonic() - t0


@pytest.mark.timeout(900)
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_kill_minus_nine_three_times_under_load_loses_nothing(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    guarantee: str,
) -> None:
    settings = service_settings.with_overrides(processing_guarantee=guarantee)
    customers = int(300 * SCALE)
    w1, w2 = two_workers(make_worker, guarantee)
    for w in (w1, w2):
        w.start()
    load = LoadProducer(settings, sim_stream(customers, seed=7), rate=200 * SCALE)
    load.start()
    recover_s: list[float] = []
    lag_at_kill: list[int] = []
    for k in range(3):
        time.sleep(4)
        lag_at_kill.append(assert_in_flight(settings, load, f"kill {k + 1}"))
        w1.kill()
        t0 = time.monotonic()
        w1.start()
        recover_s.append(time.monotonic() - t0)
    time.sleep(4)  # input produced after the last restart, too
    assert_in_flight(settings, load, "after the last restart")
    load.stop()
    wait_done(settings, w1, w2)
    timeouts = {w.name: aligner_timeouts(w) for w in (w1, w2)}
    assert stop_together(w1, w2) == [0, 0]
    figures = check_guarantee(settings, redis_url, guarantee, sim_minimum(customers))
    report(
        f"kill-9 x3 ({guarantee})",
        events=load.produced,
        kills=3,
        uncommitted_input_at_kills=lag_at_kill,
        restart_to_ready_s=[round(x, 1) for x in recover_s],
        aligner_timeouts_last_runs=timeouts,
        gave_up_logged=gave_up_lines(w1, w2),
        **figures,
    )


def _order_across_kills(
    settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    guarantee: str,
    kills: int,
) -> None:
    """Two workers, the defaults (waits, 8 partitions), kill -9 one of them ``kills``
    times while customers keep joining on ``balances`` and ``transactions`` (and with
    them partitions receive their first records), each restart on an empty data dir."""
    w1, w2 = two_workers(make_worker, guarantee)
    for w in (w1, w2):
        w.start()
    bank = joining_bank(
        int(300 * SCALE),
        seed=21,
        partitions=settings.partitions,
        open_every=int(25 * SCALE),
        join_every=50,
    )
    load = LoadProducer(settings, bank, rate=300 * SCALE)
    load.start()
    recover_s: list[float] = []
    lag_at_kill: list[int] = []
    for k in range(kills):
        time.sleep(4)
        lag_at_kill.append(assert_in_flight(settings, load, f"kill {k + 1}"))
        recover_s.append(restart_on_empty_data_dir(w1))
    time.sleep(4)
    assert_in_flight(settings, load, "after the last restart")
    load.stop()
    wait_done(settings, w1, w2)
    timeouts = {w.name: aligner_timeouts(w) for w in (w1, w2)}
    assert stop_together(w1, w2) == [0, 0]
    gave_up = gave_up_lines(w1, w2)
    try:
        figures = check_guarantee(settings, redis_url, guarantee, JOINING_MINIMUM)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nreleases that gave up waiting (logs of every run): {gave_up}; "
            f"aligner timeouts (last runs): {timeouts}; committed/end offsets now: "
            f"{group_offsets(settings)}"
        ) from exc
    report(
        f"order across {kills} kills, default waits ({guarantee})",
        events=load.produced,
        by_topic=load.produced_on,
        kills=kills,
        uncommitted_input_at_kills=lag_at_kill,
        restart_to_ready_s=[round(x, 1) for x in recover_s],
        aligner_timeouts_last_runs=timeouts,
        gave_up_logged=gave_up,
        **figures,
    )


@pytest.mark.partitions(8)
@pytest.mark.timeout(900)
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_order_across_kills_with_default_settings(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    guarantee: str,
) -> None:
    """Issue 18, item 5: every customer's events applied in event-time order across
    topics, through two kill -9s, with the worker's defaults. A transaction applied
    before the customer's opening balance gives ``initial mass`` then ``upgrade`` where
    the rules say ``initial affluent``; an event skipped shows as a profile version
    behind the oracle's."""
    settings = service_settings.with_overrides(processing_guarantee=guarantee)
    _order_across_kills(settings, make_worker, redis_url, guarantee, kills=2)


@pytest.mark.slow
@pytest.mark.partitions(8)
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_order_across_kills_long(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    guarantee: str,
) -> None:
    """The long form: six kills."""
    settings = service_settings.with_overrides(processing_guarantee=guarantee)
    _order_across_kills(settings, make_worker, redis_url, guarantee, kills=6)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_workers_joining_and_leaving_under_load_commit_everything(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    guarantee: str,
) -> None:
    """Graceful rebalances while input is produced: a second worker joins, leaves
    (SIGTERM) and joins again, each time taking partitions with batches in flight.

    The kill test covers crashes; this covers the orderly path, where a worker's last
    batch of a partition finishes while faust revokes it. Every partition's committed
    offset must reach its end (a partition whose commits stall fails ``wait_done``),
    and the outputs and profiles must equal the oracle's.
    """
    settings = service_settings.with_overrides(processing_guarantee=guarantee)
    customers = int(300 * SCALE)
    w1, w2 = two_workers(make_worker, guarantee)
    w1.start()
    load = LoadProducer(settings, sim_stream(customers, seed=11), rate=300 * SCALE)
    load.start()
    lag: dict[str, int] = {}
    time.sleep(3)
    lag["join"] = assert_in_flight(settings, load, "join")
    w2.start()  # join: partitions move to w2 mid-stream
    time.sleep(4)
    lag["leave"] = assert_in_flight(settings, load, "leave")
    assert w2.stop() == 0  # leave: they move back to w1
    time.sleep(2)
    lag["join again"] = assert_in_flight(settings, load, "join again")
    w2.start()  # and join again
    time.sleep(4)
    assert_in_flight(settings, load, "after the last join")
    load.stop()
    wait_done(settings, w1, w2)
    timeouts = {w.name: aligner_timeouts(w) for w in (w1, w2)}
    assert stop_together(w1, w2) == [0, 0]
    figures = check_guarantee(settings, redis_url, guarantee, sim_minimum(customers))
    report(
        f"graceful rebalances x3 under load ({guarantee})",
        events=load.produced,
        rebalances=3,
        uncommitted_input_at_rebalances=lag,
        aligner_timeouts=timeouts,
        gave_up_logged=gave_up_lines(w1, w2),
        **figures,
    )


def test_redis_outage_then_empty_restart_catches_up(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    private_redis: tuple[str, Callable[[], None], Callable[[], None]],
) -> None:
    url, start_redis, stop_redis = private_redis
    settings = service_settings.with_overrides(redis_url=url)
    customers = int(200 * SCALE)
    worker = make_worker(redis_url=url)
    worker.start()
    load = LoadProducer(settings, sim_stream(customers, seed=11), rate=500)
    load.start()
    time.sleep(3)
    assert_in_flight(settings, load, "Redis stop")
    stop_redis()
    outage = 8 * SCALE
    time.sleep(outage)
    status, body = worker.get("/health")
    assert status == 503 and body["redis"] is False
    start_redis()  # empty: everything written before is gone
    t0 = time.monotonic()
    time.sleep(2)
    load.stop()
    wait_done(settings, worker)
    # profiles come back: live writes plus the resync of every partition
    figures: dict[str, Any] = {}
    last_error = ""

    def equal() -> bool:
        nonlocal figures, last_error
        try:
            figures = check_against_oracle(
                settings, url, allow_redelivery=True, minimum=sim_minimum(customers)
            )
            return True
        except AssertionError as exc:
            last_error = str(exc)[:2000]
            return False

    try:
        wait_until(equal, 150, "Redis to equal the oracle", every=2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last difference: {last_error}") from None
    report(
        "redis outage + empty restart",
        events=load.produced,
        outage_s=outage,
        caught_up_after_restart_s=round(time.monotonic() - t0, 1),
        **figures,
    )
    assert worker.proc is not None and worker.proc.poll() is None


def _bad_records(n: int, now_ms: int) -> list[tuple[Record, str]]:
    """Bad records of every kind, keyed ``b<i>`` so they spread over partitions, each
    with the field its dead letter must name."""
    future = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now_ms / 1000 + 86400 * 30))
    good_tx = {
        "event_id": "x",
        "customer_id": "cbad",
        "account_id": "A",
        "ts": "2026-03-01T10:00:00+08:00",
        "type": "deposit",
        "amount": "10.00",
        "currency": "CNY",
        "channel": "mobile",
    }

    def tx(i: int, **change: Any) -> Record:
        fields = {**good_tx, "customer_id": f"b{i}", "event_id": f"bad{i}", **change}
        return ("transactions", b"b%d" % i, orjson.dumps(fields))

    kinds: list[tuple[str, Callable[[int], Record]]] = [
        ("$", lambda i: ("transactions", b"b%d" % i, b"{not json %d" % i)),
        ("$", lambda i: ("transactions", b"b%d" % i, b"\xff\xfe\xfa%d" % i)),
        ("$.amount", lambda i: tx(i, amount=True)),
        (
            "$.account_id",
            lambda i: (
                "balances",
                b"b%d" % i,
                orjson.dumps({"event_id": f"bad{i}", "customer_id": f"b{i}"}),
            ),
        ),
        ("$.currency", lambda i: tx(i, currency="XXX")),
        ("$.channel", lambda i: tx(i, channel="telepathy")),
        ("$.amount", lambda i: tx(i, amount="-5")),
        ("$.ts", lambda i: tx(i, ts=future)),
        (
            "$",
            lambda i: ("customer-profiles", b"b%d" % i, b'{"pad": "' + b"x" * 1_000_000 + b'"}'),
        ),
    ]
    return [(kinds[i % len(kinds)][1](i), kinds[i % len(kinds)][0]) for i in range(n)]


def test_bad_input_at_scale_all_dead_lettered_good_all_processed(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
) -> None:
    settings = service_settings
    n_bad = int(2000 * SCALE)
    customers = 150
    good = sim_records(customers=customers, events=int(4000 * SCALE), seed=5)
    bad_with_field = _bad_records(n_bad, int(time.time() * 1000))
    bad = [r for r, _f in bad_with_field]
    field_of = {(r[1] or b"").decode(): f for r, f in bad_with_field}
    big = [b for b in bad if len(b[2] or b"") > 100_000]
    mixed: list[Record] = []
    rng = random.Random(3)
    gi = bi = 0
    while gi < len(good) or bi < len(bad):
        if bi < len(bad) and (gi >= len(good) or rng.random() < n_bad / (n_bad + len(good))):
            mixed.append(bad[bi])
            bi += 1
        else:
            mixed.append(good[gi])
            gi += 1
    produce(settings, [m for m in mixed if len(m[2] or b"") <= 100_000])
    _produce_large(settings, big)
    worker = make_worker()
    worker.start()
    pid = worker.proc.pid if worker.proc else None
    wait_done(settings, worker)
    dead = consume_all(settings, "dead-letters", 60)
    # every bad record exactly once, each naming the field its kind breaks
    named = Counter(d["value"]["key"] for d in dead)
    assert named == Counter(list(field_of)), (
        f"dead letters per key differ: missing {sorted(set(field_of) - set(named))[:5]}, "
        f"repeated {[k for k, n in named.items() if n > 1][:5]}, "
        f"unexpected {sorted(set(named) - set(field_of))[:5]}"
    )
    wrong_field = [
        (d["value"]["key"], field_of[d["value"]["key"]], d["value"]["error"])
        for d in dead
        if d["value"]["error"].split(":")[0] != field_of[d["value"]["key"]]
    ]
    assert not wrong_field, f"{len(wrong_field)} dead letters name another field: {wrong_field[:5]}"
    reasons = Counter(d["value"]["error"].split(":")[0] for d in dead)
    assert reasons == Counter(field_of.values())
    figures = check_against_oracle(
        settings, redis_url, allow_redelivery=False, minimum=sim_minimum(customers)
    )
    assert worker.proc is not None and worker.proc.pid == pid and worker.proc.poll() is None
    report(
        "bad input at scale",
        good=len(good),
        bad=n_bad,
        dead_letters=len(dead),
        by_field=dict(reasons.most_common()),
        restarts=0,
        **figures,
    )


def _produce_large(settings: Settings, records: list[Record]) -> None:
    p = Producer(settings.producer_config(**{"message.max.bytes": 2_000_000}))
    for topic, key, value in records:
        p.produce(settings.topic(topic), key=key, value=value)
        p.poll(0)
    assert p.flush(60) == 0


ORDER_FREE_FIELDS = (
    "aum_cny",
    "frequency",
    "monetary_cny",
    "risk_type",
    "preferred_channel",
    "r_score",
    "f_score",
    "m_score",
)


def test_every_event_twice_and_shuffled_within_each_customer(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
) -> None:
    """Delivered twice and reordered per customer: the order-free parts of every
    profile equal the oracle's on the deduplicated, event-time-ordered input.

    "Within each customer's window": the core drops a redelivered event_id while it is
    among the customer's last ``dedup.size`` events and at most ``dedup.days`` (event
    time) older than the newest one — its documented guarantee. So each customer's
    doubled events are shuffled within consecutive blocks spanning less than that
    window (the first long-form run shuffled a customer's whole history: 125 events over
    more than 7 days, beyond the window, and the redeliveries counted twice).

    (The tier itself follows the path of the balance with hysteresis, so it is
    compared only where the final basis is outside every band.)
    """
    from schemas.decoder import Decoder
    from state.core import apply
    from state.profile import profile_fields

    settings = service_settings
    rules = load_rules(None)
    dec = Decoder()
    records = sim_records(customers=120, events=int(3000 * SCALE), seed=9, duplicate_share=0.0)
    rng = random.Random(4)
    by_customer: dict[bytes | None, list[Record]] = {}
    for r in records:
        by_customer.setdefault(r[1], []).append(r)
    span_ms = (rules.dedup_days - 1) * 86_400_000
    shuffled: list[Record] = []
    blocks = 0
    for recs in by_customer.values():
        twice = sorted(recs + recs, key=lambda r: dec.decode(r[0], r[2]).ts)  # type: ignore[union-attr]
        block: list[Record] = []
        start = 0
        for r in twice:
            ts = dec.decode(r[0], r[2]).ts  # type: ignore[union-attr]
            if block and (ts - start > span_ms or len(block) >= rules.dedup_size):
                rng.shuffle(block)
                shuffled.extend(block)
                blocks += 1
                block = []
            if not block:
                start = ts
            block.append(r)
        rng.shuffle(block)
        shuffled.extend(block)
        blocks += 1
    produce(settings, shuffled)
    worker = make_worker()
    worker.start()
    wait_done(settings, worker)

    # the oracle on the deduplicated, event-time-ordered input
    truth: dict[str, dict[str, str]] = {}
    for key, recs in by_customer.items():
        evs = [dec.decode(t, v) for t, _k, v in recs]
        st = None
        for ev in sorted(evs, key=lambda e: e.ts):  # type: ignore[union-attr]
            st = apply(st, ev, rules).state  # type: ignore[arg-type]
        assert st is not None and key is not None
        truth[key.decode()] = profile_fields(st, rules)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    diffs = []
    tier_checked = 0
    floors = [(0, "mass"), (500_000, "affluent"), (1_000_000, "hnw"), (6_000_000, "private")]
    for cid, want in truth.items():
        got = r.hgetall(profile_key(settings.redis_key_prefix, cid))
        for f in ORDER_FREE_FIELDS:
            if got.get(f) != want[f]:
                diffs.append((cid, f, got.get(f), want[f]))
        aum = float(want["aum_cny"])
        if all(not (0.9 * fl <= aum < fl) for fl, _ in floors[1:]):
            tier_checked += 1
            if got.get("tier") != want["tier"]:
                diffs.append((cid, "tier", got.get("tier"), want["tier"]))
    assert not diffs, diffs[:5]
    report(
        "duplicates + per-customer shuffle",
        events=len(shuffled),
        customers=len(truth),
        shuffled_blocks=blocks,
        tiers_compared=tier_checked,
    )


@pytest.fixture
def private_broker(
    kafka_bootstrap: str, tmp_path: Path
) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A broker of our own (same scripts, other ports) that the test may restart."""
    from tests.conftest import DEPLOY_DIR

    port, controller = free_port(), free_port()
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "TIERSTREAM_RUN_DIR": str(tmp_path / "kafka-run"),
    }

    def run(cmd: str) -> None:
        subprocess.run(
            [str(DEPLOY_DIR / "kafka"), cmd], env=env, check=True, capture_output=True, timeout=300
        )

    run("start")
    yield f"127.0.0.1:{port}", lambda: run("start"), lambda: run("stop")
    run("stop")


def test_broker_restart_mid_stream_loses_nothing(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    private_broker: tuple[str, Callable[[], None], Callable[[], None]],
    redis_url: str,
) -> None:
    """The broker goes down while the worker is busy and the producer keeps producing
    through the outage (librdkafka buffers and retries); nothing is lost or reordered.

    While the broker is down the producer writes ``transactions`` only: records of
    several topics buffered in the client may be appended in another order than they
    were produced when the broker returns (one produce request per partition), and the
    oracle's order is the order of appending — a race of the test's producer, not of
    the worker.
    """
    bootstrap, start_broker, stop_broker = private_broker
    settings = service_settings.with_overrides(kafka_bootstrap=bootstrap)
    create_topics(settings)
    customers = int(150 * SCALE)
    rate = 300 * SCALE
    worker = make_worker(kafka_bootstrap=bootstrap, store="rocksdb://")
    worker.start()
    load = LoadProducer(settings, sim_stream(customers, seed=13), rate=rate)
    load.start()
    time.sleep(6)
    load.only_topic = "transactions"
    assert load.single_topic_ready.wait(60), "the producer did not switch to one topic"
    assert_in_flight(settings, load, "broker stop")
    t0 = time.monotonic()
    stop_broker()
    produced_at_stop = load.produced
    down_s = 5.0
    time.sleep(down_s)
    produced_while_down = load.produced - produced_at_stop
    start_broker()
    load.only_topic = None
    assert produced_while_down >= rate * down_s / 2, (
        f"only {produced_while_down} records produced in {down_s:.0f} s without a broker"
    )
    time.sleep(5)  # all topics again, after the broker is back
    load.stop()
    wait_done(settings, worker, timeout=180)
    caught_up_s = time.monotonic() - t0
    assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
    timeouts = aligner_timeouts(worker)
    try:
        figures = check_against_oracle(
            settings, redis_url, allow_redelivery=True, minimum=sim_minimum(customers)
        )
    except AssertionError as exc:  # say whether the aligner gave up waiting (a reorder)
        raise AssertionError(f"{exc}\naligner timeouts: {timeouts}") from exc
    report(
        "broker restart mid-stream",
        events=load.produced,
        produced_while_broker_down=produced_while_down,
        broker_down_s=down_s,
        caught_up_after_stop_s=round(caught_up_s, 1),
        aligner_timeouts=timeouts,
        gave_up_logged=gave_up_lines(worker),
        **figures,
    )


def _set_topic_config(settings: Settings, topic: str, config: dict[str, str]) -> None:
    admin = AdminClient(settings.confluent_config())
    entries = [
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in config.items()
    ]
    futures = admin.incremental_alter_configs(
        [ConfigResource("topic", topic, incremental_configs=entries)]
    )
    for fut in futures.values():
        fut.result(timeout=30)


@pytest.mark.parametrize(
    "guarantee", ["at_least_once", pytest.param("exactly_once", marks=pytest.mark.slow)]
)
def test_an_output_the_broker_refuses_stops_the_worker_and_loses_nothing(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    guarantee: str,
) -> None:
    """A real delivery error from the broker (not the client's own size check): the
    ``tier-changes`` topic refuses records over 200 bytes. An infrastructure failure is
    not swallowed: the worker stops (exit 3) saying why, and acknowledges nothing of the
    batch, so when the topic takes the records again a restarted worker decides them
    all, exactly as the oracle does."""
    settings = service_settings.with_overrides(processing_guarantee=guarantee)
    tier_changes = settings.topic("tier-changes")
    _set_topic_config(settings, tier_changes, {"max.message.bytes": "200"})
    total = produce(settings, scripted_bank())
    worker = make_worker(processing_guarantee=guarantee)
    worker.start(wait=False)
    rc = worker.wait_exit(120)
    log = worker.log_path.read_text(errors="replace")
    assert rc == 3, log[-3000:]
    assert "batch processing failed" in log, log[-3000:]
    assert re.search(r"too.?large", log, re.IGNORECASE), log[-3000:]
    # nothing acknowledged: every input record is still uncommitted
    inputs = set(settings.input_topics)
    offsets = group_offsets(settings)
    uncommitted = sum(end - (got or 0) for (t, _p), (got, end) in offsets.items() if t in inputs)
    assert uncommitted == total, offsets
    assert consume_all(settings, "tier-changes", 30) == []
    # the broker takes them again: everything is decided, once
    _set_topic_config(settings, tier_changes, {"max.message.bytes": "1048588"})
    worker.start()
    wait_done(settings, worker, timeout=120)
    figures = check_guarantee(settings, redis_url, guarantee, {"tier-changes/downgrade": 2})
    assert worker.stop() == 0
    report(f"output refused by the broker ({guarantee})", exit_code=rc, **figures)
