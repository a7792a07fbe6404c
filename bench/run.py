"""``python -m bench.run``: the worker, a baseline and a peer on a bank with history.

One run: build (or reuse) a simulated bank whose customers have ``--history-days`` of
history (bench/bank.py), give each system those states its own way through Kafka
(bench/restore.py), then measure each over the same live events that follow: the
throughput rounds (interleaved), the offered-load latency, CPU per event against the
customers' history (``history``), one worker against two (``scale``), changelog
recovery and Redis throughput; write a markdown report to
``bench/results/<timestamp>.md`` and ``bench/LATEST.md``, and print the ratios last.
Every topic, consumer group, Redis key and directory of the run is named after a
unique run id and deleted at the end. It reports figures; it never passes or fails
on them. See docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bank import BankFiles, BankSpec, ensure_banks, read_states
from bench.common import (
    REPO_ROOT,
    Throughput,
    delete_redis_prefix,
    delete_topics,
    dir_bytes,
    histogram_buckets,
    histogram_quantile,
    http_text,
    install_redis_functions,
    machine,
    measure_progress,
    remove_dir,
    run_id,
    stop_process,
    topics_containing,
    wait_until,
)
from bench.data import read_records
from bench.latency import offered_load
from bench.profile import PySpy, summarise
from bench.recovery import measure_recovery, typical_state
from bench.redis_bench import measure_redis
from bench.report import Report, Scale, Sweep, rate, ratios, render
from bench.systems import Runner, free_port, status_consumed
from bench.worker_bench import worker_state_bytes
from streams.settings import Settings

PHASES = (
    "worker",
    "baseline",
    "peer",
    "latency",
    "history",
    "scale",
    "recovery",
    "redis",
    "profile",
)
RESULTS = REPO_ROOT / "bench" / "results"
SYSTEMS = ("worker", "ref", "baseline", "peer")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    ap.add_argument("--customers", type=int, default=100_000, help="simulated customers")
    ap.add_argument(
        "--events", type=int, default=1_000_000, help="live events after the bank's cut"
    )
    ap.add_argument(
        "--history-days", type=int, default=90, help="days of history the customers have"
    )
    ap.add_argument("--partitions", type=int, default=8, help="partitions of every topic")
    ap.add_argument("--seed", type=int, default=42, help="simulator seed")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="20,000 customers / 200,000 events, same shape (a fast look)",
    )
    ap.add_argument(
        "--only",
        default=",".join(p for p in PHASES if p != "profile"),
        help=f"comma-separated phases from {','.join(PHASES)} (default: all but profile)",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="throughput rounds of worker, baseline and peer, interleaved (ratios per "
        "round; their median is reported: one round is at the mercy of machine drift)",
    )
    ap.add_argument(
        "--state-cache",
        type=int,
        help="state cache of the worker and the baseline (default: the worker's default, "
        "at most half the bank's customers)",
    )
    ap.add_argument("--latency-seconds", type=float, default=30.0, help="offered-load duration")
    ap.add_argument(
        "--latency-rate",
        type=float,
        help="offered rate (events/s); default half the worker's measured maximum",
    )
    ap.add_argument(
        "--sweep-days", default="0,30,90,180", help="history lengths of the history phase"
    )
    ap.add_argument(
        "--sweep-customers", type=int, default=20_000, help="customers of the history phase"
    )
    ap.add_argument(
        "--sweep-events", type=int, default=200_000, help="live events per history length"
    )
    ap.add_argument(
        "--sweep-core-events",
        type=int,
        default=60_000,
        help="live events of the core-alone measure per history length",
    )
    ap.add_argument(
        "--scale-workers", type=int, default=2, help="worker processes against one (scale)"
    )
    ap.add_argument("--scale-rounds", type=int, default=2, help="rounds of the scale phase")
    ap.add_argument(
        "--recovery-sizes",
        help="customers in the recovery changelogs (default 100000,1000000; --quick 100000)",
    )
    ap.add_argument("--redis-profiles", type=int, default=100_000, help="profiles written")
    ap.add_argument(
        "--worker-ref",
        help="also run the worker of this git ref (its state, schemas and streams), "
        "interleaved with this tree's, as the system 'ref' (before/after of a change)",
    )
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--keep", action="store_true", help="keep topics/keys (debugging)")
    args = ap.parse_args(argv)
    if args.quick:
        args.customers, args.events = 20_000, 200_000
    if args.recovery_sizes is None:
        args.recovery_sizes = "100000" if args.quick else "100000,1000000"
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.history_days < 0:
        ap.error("--history-days must be >= 0")
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        ap.error(f"unknown phase(s) {', '.join(sorted(unknown))}; known: {', '.join(PHASES)}")
    args.sweep = tuple(int(x) for x in args.sweep_days.split(",") if x.strip())
    return args


#: The worker's histograms that split one record's latency, in the order a record
#: meets them: (label in the report, metric, label selector).
STAGES = (
    (
        "input age at intake (producer, broker, fetch)",
        "tierstream_input_age_at_intake_seconds",
        None,
    ),
    ("aligner hold (alignment + batch in progress)", "tierstream_aligner_hold_seconds", None),
    ("batch: whole (decode, core, writes)", "tierstream_batch_duration_seconds", None),
    ("batch write: outputs acked + Redis", "tierstream_batch_write_seconds", {"stage": "outputs"}),
    ("batch write: changelog acked + store", "tierstream_batch_write_seconds", {"stage": "state"}),
    ("batch size (events, not seconds)", "tierstream_batch_size_events", None),
)


def _scrape(url: str) -> str:
    if not url:
        return ""
    try:
        return http_text(url, timeout=5)
    except OSError:
        return ""


def worker_stages(before: str, after: str) -> list[tuple[str, int, float | None, float | None]]:
    """p50/p99 of each stage histogram over the interval between two scrapes."""
    out = []
    for label, metric, sel in STAGES:
        b = histogram_buckets(before, metric, sel)
        a = histogram_buckets(after, metric, sel)
        n = int(max(a.values(), default=0) - max(b.values(), default=0))
        out.append((label, n, histogram_quantile(b, a, 0.5), histogram_quantile(b, a, 0.99)))
    return out


def bank_summary(bank: BankFiles) -> dict[str, Any]:
    sizes = [len(v) for _k, v in read_states(bank.states)]
    return {
        "days": bank.days,
        "customers": len(sizes),
        "state_mean": statistics.mean(sizes) if sizes else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_redis_functions(args.redis_url)
    rid = run_id()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rep = Report(args, machine(), rid)
    work = Path(tempfile.mkdtemp(prefix=f"tierstream-{rid}-"))
    logs = RESULTS / f"{stamp}-logs"
    # records kept for the latency phases: each of the three systems gets its own slice
    # of up to rate x seconds (half the worker's max for 30 s was ~100,000 on 2026-12-03)
    tail = max(args.events * 2, 50_000)
    timeout = max(600.0, args.events / 200)
    runner = Runner(args, rid, work, logs, timeout)
    print(
        f"run {rid}: {args.customers:,} customers with {args.history_days} days of history, "
        f"{args.events:,} live events, phases {','.join(args.phases)}; machine {rep.machine}",
        flush=True,
    )
    try:
        if args.worker_ref:
            from bench.history import extract_ref

            code = extract_ref(args.worker_ref, work / "ref")
            runner.ref_root, runner.ref_label = code.root, code.label
        systems = [k for k in SYSTEMS if k in args.phases or (k == "ref" and args.worker_ref)]
        needs_bank = {*SYSTEMS, "latency", "scale", "profile", "recovery", "redis"}
        bank = None
        if needs_bank & set(args.phases):
            spec = BankSpec(args.customers, args.seed, (args.history_days,), args.events + tail)
            bank = ensure_banks(spec)[args.history_days]
            rep.bank = bank_summary(bank) | {"cache": runner.cache(bank)}
            rep.mix = dict(Counter(r.topic for r in read_records(bank.records, 0, args.events)))
            print(
                f"  bank: {rep.bank['customers']:,} customers, {bank.days} days, state mean "
                f"{rep.bank['state_mean']:,.0f} B; state cache {rep.bank['cache']:,}",
                flush=True,
            )
        s1 = runner.topics("r1")
        if systems and bank is not None:
            print(f"  loading {args.events:,} records into {s1.topic_prefix}* ...", flush=True)
            rep.load_s = runner.load(s1, bank, args.events)
            print(f"  loaded in {rep.load_s:.1f}s", flush=True)
        offset = args.events  # next unused record of the tail (for latency phases)
        latency_rate = args.latency_rate

        def latency(
            name: str, thr: Throughput, consumed: Callable[[], int], metrics_url: str = ""
        ) -> None:
            """Offered load at half the worker's max (the first system measured sets it).

            Every system reads the same input topics, so the records offered to the
            systems measured before this one are a backlog for it: it first works
            through them (``consumed`` reaches ``offset``), or its latency would measure
            that backlog (it did, before 2026-12-03: the baseline's 2 s / 11 s).
            """
            nonlocal offset, latency_rate
            if "latency" not in args.phases or bank is None:
                return
            if offset > args.events:
                wait_until(lambda: consumed() >= offset, timeout, f"{name} to catch up")
            if latency_rate is None:
                latency_rate = thr.events_per_s / 2
            if not latency_rate:
                return
            available = args.events + tail - offset
            print(
                f"  latency: {name} at {latency_rate:,.0f} events/s for "
                f"{args.latency_seconds:.0f}s",
                flush=True,
            )
            before = _scrape(metrics_url)
            res = offered_load(
                name, s1, bank.records, offset, available, latency_rate, args.latency_seconds
            )
            offset += res.inputs
            rep.latency[name] = res
            if metrics_url:
                rep.stages = worker_stages(before, _scrape(metrics_url))
            print(
                f"    p50 {res.p50_ms} ms, p99 {res.p99_ms} ms ({res.samples} outputs)", flush=True
            )

        if bank is not None:
            for name in systems:
                print(f"  {name}: restore, then throughput ...", flush=True)
                if name == "ref":
                    thr = _one_run(runner, name, s1, "r1", bank, args.events)
                elif name == "worker":
                    thr, w = runner.worker(s1, bank, args.events, "worker-r1.log")
                    print(f"    {rate(thr)}", flush=True)
                    try:
                        latency("worker", thr, w.consumed, w.url + "/metrics")
                    finally:
                        w.stop()
                    avg, disk, keys = worker_state_bytes(Path(s1.data_dir), args.customers)
                    thr.state_bytes_per_customer = avg
                    thr.notes += f"; RocksDB {disk / 1e6:.0f} MB on disk for {keys:,} keys"
                else:
                    thr, proc, status = runner.plain(name, s1, "r1", bank, args.events)
                    print(f"    {rate(thr)}", flush=True)
                    try:
                        latency(name, thr, lambda st=status: status_consumed(st))  # type: ignore[misc]
                    finally:
                        stop_process(proc)
                    _plain_notes(name, thr, status, runner, "r1")
                rep.throughput[name] = thr

        for rnd in range(2, args.rounds + 1) if systems and bank is not None else ():
            assert bank is not None
            # rotate the order each round, so no system always runs first or last
            order = systems[(rnd - 1) % len(systems) :] + systems[: (rnd - 1) % len(systems)]
            print(f"  round {rnd}/{args.rounds}: {', '.join(order)} ...", flush=True)
            # the same records on topics of the round's own: the latency phases have
            # appended to the first round's topics
            rs = runner.topics(f"r{rnd}")
            runner.load(rs, bank, args.events)
            got: dict[str, Throughput] = {}
            for name in order:
                got[name] = _one_run(runner, name, rs, f"r{rnd}", bank, args.events)
                print(f"    {name}: {rate(got[name])}", flush=True)
            rep.rounds.append(got)

        if "history" in args.phases:
            rep.sweep = _sweep(runner, args)

        if "scale" in args.phases and bank is not None:
            rep.scale = _scale(runner, args, bank)

        if "profile" in args.phases and bank is not None:
            rep.profile_md = _profile(runner, bank, args.events)

        if "recovery" in args.phases:
            template = typical_state(bank.states if bank is not None else None)
            print(f"  recovery: typical state {len(template)} bytes", flush=True)
            for n in [0] + [int(x) for x in args.recovery_sizes.split(",") if x.strip()]:
                s = s1.with_overrides(
                    topic_prefix=f"{rid}-rec{n}.",
                    app_id=f"{rid}-rec{n}",
                    data_dir=str(work / f"rec{n}"),
                    web_port=free_port(),
                    redis_key_prefix=f"{rid}:r:",
                )
                r = measure_recovery(s, n, template, logs, timeout=max(300.0, n / 500))
                rep.recovery.append(r)
                print(
                    f"    {n:,} customers: ready after {r.ready_s:.1f}s (restored {r.restored:,})",
                    flush=True,
                )

        if "redis" in args.phases:
            template = typical_state(bank.states if bank is not None else None)
            rep.redis = measure_redis(args.redis_url, f"{rid}:p:", template, args.redis_profiles)
            print(f"  redis: {rep.redis.per_s:,.0f} profiles/s", flush=True)
    except Exception as exc:  # report what was measured, and why the rest is missing
        rep.errors.append(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        runner.stop_all()
        if not args.keep:
            names = topics_containing(args.bootstrap, rid)
            delete_topics(args.bootstrap, names)
            delete_redis_prefix(args.redis_url, f"{rid}:")
            remove_dir(work)
    text = render(rep)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stamp}.md"
    out.write_text(text)
    (REPO_ROOT / "bench" / "LATEST.md").write_text(text)
    print(f"\nreport: {out} (and bench/LATEST.md)")
    print(ratios(rep))
    return 1 if rep.errors else 0


def _plain_notes(name: str, thr: Throughput, status: Path, runner: Runner, tag: str) -> None:
    from bench.baseline import read_status

    if name == "baseline":
        st = read_status(status)
        v = st.get("state_bytes_per_customer")
        thr.state_bytes_per_customer = float(v) if isinstance(v, int | float) else None
        customers = st.get("customers")
        thr.notes = (
            "confluent-kafka + BatchProcessor, dict state restored from a topic (no "
            f"changelog), Redis via the sink; {customers:,} customers at the end"
            if isinstance(customers, int)
            else "confluent-kafka + BatchProcessor, dict state restored from a topic"
        )
    else:
        qdir = runner.quix_dir(tag)
        thr.state_bytes_per_customer, keys = _quix_state_bytes(qdir)
        thr.notes = (
            "Quix Streams, RocksDB state restored from its changelog; "
            f"{dir_bytes(qdir) / 1e6:.0f} MB on disk for {keys:,} customers"
        )


def _one_run(
    runner: Runner, name: str, s: Settings, tag: str, bank: BankFiles, events: int
) -> Throughput:
    """One throughput run of one system over ``s``' input, stopped afterwards."""
    if name == "worker":  # ``s`` names the tag's own app id, data dir and Redis prefix
        thr, w = runner.worker(s, bank, events, f"worker-{tag}.log")
        w.stop()
        return thr
    if name == "ref":  # the same, from another ref's tree, with ids of its own
        rs = s.with_overrides(
            app_id=f"{s.app_id}-ref",
            data_dir=f"{s.data_dir}-ref",
            web_port=free_port(),
            redis_key_prefix=f"{s.redis_key_prefix}ref:",
        )
        assert runner.ref_root is not None
        thr, w = runner.worker(rs, bank, events, f"ref-{tag}.log", runner.ref_root)
        w.stop()
        thr.name = f"worker @{runner.ref_label}"
        return thr
    thr, proc, _status = runner.plain(name, s, tag, bank, events)
    stop_process(proc)
    return thr


def _sweep(runner: Runner, args: argparse.Namespace) -> list[Sweep]:
    """CPU per event against history: the core alone, the worker and the baseline on
    banks whose customers have each of ``--sweep-days`` of history."""
    spec = BankSpec(args.sweep_customers, args.seed, args.sweep, args.sweep_events * 3)
    banks = ensure_banks(spec)
    out = []
    who = [k for k in ("worker", "baseline") if k in args.phases] or ["worker", "baseline"]
    for i, d in enumerate(args.sweep):
        bank = banks[d]
        summary = bank_summary(bank)
        sw = Sweep(d, summary["customers"], summary["state_mean"])
        print(f"  history {d} days: core alone ...", flush=True)
        sw.core = _core_alone(bank, args)
        tag = f"h{d}"
        s = runner.topics(tag)
        runner.load(s, bank, args.sweep_events)
        for name in who if i % 2 == 0 else who[::-1]:
            sw.systems[name] = _one_run(runner, name, s, tag, bank, args.sweep_events)
            print(f"    {name}: {rate(sw.systems[name])}", flush=True)
        out.append(sw)
    return out


def _core_alone(bank: BankFiles, args: argparse.Namespace) -> dict[str, Any] | None:
    """bench.history's measure of this bank, in a process of its own."""
    import json

    info = bank.states.with_suffix(".json")
    proc = subprocess.run(
        [
            sys.executable, "-m", "bench.history", f"--measure={info}",
            f"--live-events={args.sweep_core_events}",
        ],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"    core alone: {result['cpu_us_per_event']:.1f} µs/event", flush=True)
    return result


def _scale(runner: Runner, args: argparse.Namespace, bank: BankFiles) -> list[Scale]:
    """One worker, then ``--scale-workers``, on copies of the same data, ``--scale-rounds``
    times interleaved."""
    out = []
    for r in range(args.scale_rounds):
        for n in (1, args.scale_workers) if r % 2 == 0 else (args.scale_workers, 1):
            print(f"  scale: {n} worker(s), round {r + 1} ...", flush=True)
            thr, per, use = runner.scale(n, f"s{n}r{r}", bank, args.events)
            out.append(Scale(n, thr, per, use, r))
            print(f"    {rate(thr)}; machine {use.busy_share:.0%} busy", flush=True)
    return out


def _profile(runner: Runner, bank: BankFiles, events: int) -> str:
    """A separate worker run under py-spy, attached once the live phase has started
    (the restore is not the live cost); returns the summary markdown."""
    s = runner.topics("prof")
    runner.load(s, bank, events)
    print("  profile: worker under py-spy ...", flush=True)
    w = runner.start_worker(s, bank, "worker-profile.log")
    w.start()
    wait_until(lambda: w.consumed() > 0 or not w.alive(), runner.timeout, "first event")
    spy = PySpy(w.pid, RESULTS)
    try:
        seen = measure_progress(w.pid, w.alive, w.consumed, events, runner.timeout)
    finally:
        spy.stop()
        w.stop()
    summary = summarise(spy.raw)
    head = (
        f"Worker under py-spy (100 Hz, non-blocking; throughput while profiled "
        f"{events / (seen.t_done - seen.t_first):,.0f} events/s, "
        f"{(seen.cpu_done - seen.cpu_first) / events * 1e6:,.0f} µs CPU/event). "
        "Flame graph: bench/results/worker.svg\n\n"
    )
    text = head + summary.render()
    (RESULTS / "profile.md").write_text(text)
    print(text, flush=True)
    return text


def _quix_state_bytes(qdir: Path) -> tuple[float | None, int]:
    """Average stored state value per customer in Quix's RocksDB stores, and how many
    customers they hold (more than the bank's would mean states restored into the
    wrong partitions). Quix opens its stores in raw mode with a metadata column family;
    read-only opens must name it too."""
    from rocksdict import AccessType, Options, Rdict

    total = count = 0
    for db in qdir.rglob("CURRENT"):
        path = str(db.parent)
        try:
            cfs = Rdict.list_cf(path, Options(raw_mode=True))
            d = Rdict(
                path,
                options=Options(raw_mode=True),
                access_type=AccessType.read_only(),
                column_families={c: Options(raw_mode=True) for c in cfs if c != "default"},
            )
        except Exception:  # not a store Quix finished creating
            continue
        try:
            for k, v in d.items():
                if isinstance(k, bytes) and k.endswith(b"|s") and isinstance(v, bytes):
                    total += len(v)
                    count += 1
        finally:
            d.close()
    return (total / count if count else None), count


if __name__ == "__main__":
    raise SystemExit(main())
