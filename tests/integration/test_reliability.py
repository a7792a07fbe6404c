"""Reliability against an oracle: kills, outages and bad input, on the real services.

Each scenario recomputes the truth from the input topics with the pure core
(tests/integration/oracle.py) and compares the worker's outputs (read_committed) and
Redis profiles with it, reporting lost, duplicated and wrong decisions separately.
Short forms run in CI; ``TIERSTREAM_RELIABILITY_SCALE=5`` runs the long forms (5x the
events and customers, 10,000 bad records, a 40 s Redis outage, load at 3,000 events/s).

Figures (events, kills, lost, duplicates, time to recover) are printed and appended
to ``$TIERSTREAM_RELIABILITY_REPORT`` (JSON lines) when it is set.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from confluent_kafka import Producer

from state.rules import load_rules
from streams.redis_sink import profile_key
from streams.settings import Settings
from streams.tools.simulator import SimConfig, Simulator
from tests.integration.harness import (
    WorkerProcess,
    consume_all,
    free_port,
    produce,
    wait_caught_up,
    wait_until,
)
from tests.integration.oracle import compare_decisions, recompute

Record = tuple[str, bytes | None, bytes | None]
OUTPUTS = ("tier-changes", "offers", "alerts")
SCALE = float(os.environ.get("TIERSTREAM_RELIABILITY_SCALE", "1"))


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


class LoadProducer(threading.Thread):
    """Produces records at a fixed rate in the background; stops by itself.

    Records go out in the given (event-time) order, and the producer waits for the
    broker's ack whenever the next record is for another topic: then a record never
    becomes visible before one produced earlier on another input, so the worker's
    event-time alignment sees the same order the oracle recomputes. (Without this, a
    fetch can see topic B's newer record before topic A's older one — the same race
    Kafka Streams has with max.task.idle.ms=0.)
    """

    def __init__(self, settings: Settings, records: Sequence[Record], rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.records, self.rate = settings, records, rate
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            p = Producer(self.settings.producer_config(**{"linger.ms": 0}))
            start = time.monotonic()
            last_topic = None
            for i, (topic, key, value) in enumerate(self.records):
                if last_topic is not None and topic != last_topic:
                    assert p.flush(30) == 0
                p.produce(self.settings.topic(topic), key=key, value=value)
                p.poll(0)
                last_topic = topic
                ahead = start + (i + 1) / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            assert p.flush(30) == 0
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def aligner_timeouts(worker: WorkerProcess) -> dict[str, float]:
    """The worker's ``tierstream_aligner_timeouts_total`` by reason."""
    return {
        labels["reason"]: value
        for labels, value in worker.metric_samples("tierstream_aligner_timeouts_total")
    }


def wait_done(settings: Settings, *workers: WorkerProcess, timeout: float = 240) -> None:
    wait_caught_up(settings, timeout, "the group to commit all input", *workers)


def outputs(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    return {t: [r["value"] for r in consume_all(settings, t, 60)] for t in OUTPUTS}


def check_against_oracle(
    settings: Settings, redis_url: str, *, allow_redelivery: bool
) -> dict[str, int]:
    """Assert outputs and Redis equal the oracle; return figures."""
    truth = recompute(settings, load_rules(settings.rules_path))
    got = outputs(settings)
    figures = {"decisions": len(truth.decisions), "lost": 0, "duplicates": 0, "wrong": 0}
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
            raise AssertionError(f"{topic}: {cmp}; lost records: {lost[:3]}")
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    pipe = r.pipeline(transaction=False)
    keys = list(truth.profiles)
    for key in keys:
        pipe.hgetall(profile_key(settings.redis_key_prefix, key.decode()))
    stored = pipe.execute()
    mismatched = [k for k, s in zip(keys, stored, strict=True) if s != truth.profiles[k]]
    diffs = [
        (k, {f: (v, s.get(f)) for f, v in truth.profiles[k].items() if s.get(f) != v})
        for k, s in zip(keys, stored, strict=True)
        if s != truth.profiles[k]
    ]
    assert not mismatched, (
        f"{len(mismatched)} Redis profiles differ, e.g. (field: (oracle, Redis)) {diffs[:3]}"
    )
    figures["profiles"] = len(keys)
    return figures


def two_workers(
    make_worker: Callable[..., WorkerProcess], guarantee: str
) -> tuple[WorkerProcess, WorkerProcess]:
    """Two RocksDB workers (not started), the production store: it keeps each
    partition's data and changelog offset across reassignments (see
    docs/reliability.md on the memory store)."""
    w1 = make_worker("w1", processing_guarantee=guarantee, store="rocksdb://")
    w2 = make_worker("w2", processing_guarantee=guarantee, web_port=free_port(), store="rocksdb://")
    for w in (w1, w2):
        # generous waits: restarts and rebalances make one input's fetch trail another's
        w.extra_args = ["--max-idle-ms", "10000", "--max-lag-wait-ms", "30000"]
    return w1, w2


def check_guarantee(settings: Settings, redis_url: str, guarantee: str) -> dict[str, int]:
    """``check_against_oracle`` for the guarantee; exactly_once also allows no copies."""
    figures = check_against_oracle(
        settings, redis_url, allow_redelivery=guarantee == "at_least_once"
    )
    if guarantee == "exactly_once":
        assert figures["duplicates"] == 0, "read_committed saw duplicates under exactly_once"
    return figures


@pytest.mark.timeout(900)
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_kill_minus_nine_three_times_under_load_loses_nothing(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    guarantee: str,
) -> None:
    settings = service_settings.with_overrides(processing_guarantee=guarantee)
    records = sim_records(customers=int(300 * SCALE), events=int(9000 * SCALE))
    w1, w2 = two_workers(make_worker, guarantee)
    for w in (w1, w2):
        w.start()
    load = LoadProducer(settings, records, rate=600 * SCALE)
    load.start()
    recover_s: list[float] = []
    for _ in range(3):
        time.sleep(4)
        w1.kill()
        t0 = time.monotonic()
        w1.start()
        recover_s.append(time.monotonic() - t0)
    load.join(300)
    assert load.error is None, load.error
    wait_done(settings, w1, w2)
    assert w1.stop() == 0 and w2.stop() == 0
    figures = check_guarantee(settings, redis_url, guarantee)
    report(
        f"kill-9 x3 ({guarantee})",
        events=len(records),
        kills=3,
        restart_to_ready_s=[round(x, 1) for x in recover_s],
        **figures,
    )


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
    records = sim_records(customers=int(300 * SCALE), events=int(9000 * SCALE), seed=11)
    w1, w2 = two_workers(make_worker, guarantee)
    w1.start()
    load = LoadProducer(settings, records, rate=600 * SCALE)
    load.start()
    time.sleep(3)
    w2.start()  # join: partitions move to w2 mid-stream
    time.sleep(4)
    assert w2.stop() == 0  # leave: they move back to w1
    time.sleep(2)
    w2.start()  # and join again
    load.join(300)
    assert load.error is None, load.error
    wait_done(settings, w1, w2)
    timeouts = {w.name: aligner_timeouts(w) for w in (w1, w2)}
    assert w1.stop() == 0 and w2.stop() == 0
    figures = check_guarantee(settings, redis_url, guarantee)
    report(
        f"graceful rebalances x3 under load ({guarantee})",
        events=len(records),
        rebalances=3,
        aligner_timeouts=timeouts,
        **figures,
    )


def test_redis_outage_then_empty_restart_catches_up(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    private_redis: tuple[str, Callable[[], None], Callable[[], None]],
) -> None:
    url, start_redis, stop_redis = private_redis
    settings = service_settings.with_overrides(redis_url=url)
    records = sim_records(customers=int(200 * SCALE), events=int(5000 * SCALE), seed=11)
    worker = make_worker(redis_url=url)
    worker.start()
    load = LoadProducer(settings, records, rate=500)
    load.start()
    time.sleep(3)
    stop_redis()
    outage = 8 * SCALE
    time.sleep(outage)
    status, body = worker.get("/health")
    assert status == 503 and body["redis"] is False
    start_redis()  # empty: everything written before is gone
    t0 = time.monotonic()
    load.join(120)
    assert load.error is None
    wait_done(settings, worker)
    # profiles come back: live writes plus the resync of every partition
    figures: dict[str, int] = {}
    last_error = ""

    def equal() -> bool:
        nonlocal figures, last_error
        try:
            figures = check_against_oracle(settings, url, allow_redelivery=True)
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
        events=len(records),
        outage_s=outage,
        caught_up_after_restart_s=round(time.monotonic() - t0, 1),
        **figures,
    )
    assert worker.proc is not None and worker.proc.poll() is None


def _bad_records(n: int, now_ms: int) -> list[Record]:
    """Bad records of every kind, keyed so they spread over partitions."""
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
    kinds: list[Callable[[int], Record]] = [
        lambda i: ("transactions", b"b%d" % i, b"{not json %d" % i),
        lambda i: ("transactions", b"b%d" % i, b"\xff\xfe\xfa%d" % i),
        lambda i: (
            "transactions",
            b"b%d" % i,
            orjson.dumps(
                {**good_tx, "customer_id": f"b{i}", "event_id": f"bad{i}", "amount": True}
            ),
        ),
        lambda i: (
            "balances",
            b"b%d" % i,
            orjson.dumps({"event_id": f"bad{i}", "customer_id": f"b{i}"}),
        ),
        lambda i: (
            "transactions",
            b"b%d" % i,
            orjson.dumps(
                {**good_tx, "customer_id": f"b{i}", "event_id": f"bad{i}", "currency": "XXX"}
            ),
        ),
        lambda i: (
            "transactions",
            b"b%d" % i,
            orjson.dumps(
                {**good_tx, "customer_id": f"b{i}", "event_id": f"bad{i}", "channel": "telepathy"}
            ),
        ),
        lambda i: (
            "transactions",
            b"b%d" % i,
            orjson.dumps(
                {**good_tx, "customer_id": f"b{i}", "event_id": f"bad{i}", "amount": "-5"}
            ),
        ),
        lambda i: (
            "transactions",
            b"b%d" % i,
            orjson.dumps({**good_tx, "customer_id": f"b{i}", "event_id": f"bad{i}", "ts": future}),
        ),
        lambda i: ("customer-profiles", b"b%d" % i, b'{"pad": "' + b"x" * 1_000_000 + b'"}'),
    ]
    return [kinds[i % len(kinds)](i) for i in range(n)]


def test_bad_input_at_scale_all_dead_lettered_good_all_processed(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
) -> None:
    settings = service_settings
    n_bad = int(2000 * SCALE)
    good = sim_records(customers=150, events=int(4000 * SCALE), seed=5)
    bad = _bad_records(n_bad, int(time.time() * 1000))
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
    assert len(dead) == n_bad, f"{len(dead)} dead letters for {n_bad} bad records"
    reasons = Counter(d["value"]["error"].split(":")[0] for d in dead)
    assert all(d["value"]["error"] for d in dead)
    figures = check_against_oracle(settings, redis_url, allow_redelivery=False)
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
    bootstrap, start_broker, stop_broker = private_broker
    from streams.topics import create_topics

    settings = service_settings.with_overrides(kafka_bootstrap=bootstrap)
    create_topics(settings)
    records = sim_records(customers=int(150 * SCALE), events=int(3000 * SCALE), seed=13)
    half = len(records) // 2
    # The first half goes in before the worker starts: produced while the worker runs
    # (without waiting for acks between topics) a later record on one input can become
    # visible before an earlier one on another — the documented live race, which made
    # this test lose a few consent-dependent offers of the first half (CI, 2026-12-03),
    # unrelated to the broker restart. The second half is produced live by
    # LoadProducer, which waits for acks whenever the topic changes.
    produce(settings, records[:half])
    worker = make_worker(kafka_bootstrap=bootstrap, store="rocksdb://")
    worker.extra_args = ["--max-idle-ms", "10000"]
    worker.start()
    wait_done(settings, worker)
    t0 = time.monotonic()
    stop_broker()
    down_s = 5.0
    time.sleep(down_s)
    start_broker()
    load = LoadProducer(settings, records[half:], rate=1000)
    load.start()
    load.join(120)
    assert load.error is None, load.error
    wait_done(settings, worker, timeout=180)
    caught_up_s = time.monotonic() - t0
    assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
    timeouts = aligner_timeouts(worker)
    try:
        figures = check_against_oracle(settings, redis_url, allow_redelivery=True)
    except AssertionError as exc:  # say whether the aligner gave up waiting (a reorder)
        raise AssertionError(f"{exc}\naligner timeouts: {timeouts}") from exc
    report(
        "broker restart mid-stream",
        events=len(records),
        broker_down_s=down_s,
        caught_up_after_stop_s=round(caught_up_s, 1),
        aligner_timeouts=timeouts,
        **figures,
    )
