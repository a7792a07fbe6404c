"""``python -m bench.run``: the worker, a baseline and a peer on the same data, side by side.

One run: generate (or reuse) the simulated input, load it into Kafka on this run's own
topics, then measure each system over the same records, the offered-load latency,
changelog recovery and Redis throughput; write a markdown report to
``bench/results/<timestamp>.md`` and ``bench/LATEST.md``, and print the ratios last.
Every topic, consumer group, Redis key and directory of the run is named after a
unique run id and deleted at the end. It reports figures; it never passes or fails
on them. See docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.baseline import read_status
from bench.common import (
    REPO_ROOT,
    BenchError,
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
    peak_rss_bytes,
    remove_dir,
    run_id,
    stop_process,
    topics_containing,
    wait_until,
)
from bench.data import ensure_dataset, load_into_kafka, read_records
from bench.latency import Latency, offered_load
from bench.profile import PySpy, summarise
from bench.recovery import Recovery, measure_recovery, typical_state
from bench.redis_bench import RedisThroughput, measure_redis
from bench.worker_bench import Worker, run_throughput, worker_state_bytes
from streams.settings import Settings
from streams.topics import create_topics

PHASES = ("worker", "baseline", "peer", "latency", "recovery", "redis", "profile")
RESULTS = REPO_ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Report:
    args: argparse.Namespace
    machine: dict[str, str]
    run: str
    mix: dict[str, int] = field(default_factory=dict)
    load_s: float = 0.0
    throughput: dict[str, Throughput] = field(default_factory=dict)
    latency: dict[str, Latency] = field(default_factory=dict)
    recovery: list[Recovery] = field(default_factory=list)
    redis: RedisThroughput | None = None
    profile_md: str = ""
    #: Extra throughput rounds (round 2..N): system -> Throughput, per round.
    rounds: list[dict[str, Throughput]] = field(default_factory=list)
    #: The worker's own stage histograms over its latency run: (stage, n, p50, p99) s.
    stages: list[tuple[str, int, float | None, float | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    ap.add_argument("--customers", type=int, default=100_000, help="simulated customers")
    ap.add_argument("--events", type=int, default=1_000_000, help="input events loaded")
    ap.add_argument("--partitions", type=int, default=8, help="partitions of every topic")
    ap.add_argument("--seed", type=int, default=42, help="simulator seed")
    ap.add_argument(
        "--quick", action="store_true", help="20,000 customers / 200,000 events (a fast look)"
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
    ap.add_argument("--latency-seconds", type=float, default=30.0, help="offered-load duration")
    ap.add_argument(
        "--latency-rate",
        type=float,
        help="offered rate (events/s); default half the worker's measured maximum",
    )
    ap.add_argument(
        "--recovery-sizes",
        help="customers in the recovery changelogs (default 100000,1000000; --quick 100000)",
    )
    ap.add_argument("--redis-profiles", type=int, default=100_000, help="profiles written")
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
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        ap.error(f"unknown phase(s) {', '.join(sorted(unknown))}; known: {', '.join(PHASES)}")
    return args


def _spawn(module: str, extra: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", module, *extra],
        cwd=REPO_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


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


def _status_consumed(status: Path) -> Callable[[], int]:
    """Events a baseline or peer process has counted, from its status file."""

    def consumed() -> int:
        n = read_status(status).get("consumed", 0)
        return int(n) if isinstance(n, int | float) else 0

    return consumed


def _tail(log: Path, n: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_plain(
    name: str,
    module: str,
    extra: list[str],
    status: Path,
    log: Path,
    events: int,
    timeout: float,
    after: object = None,
) -> tuple[Throughput, subprocess.Popen[bytes]]:
    """Start a baseline/peer process and time it through the loaded input."""
    proc = _spawn(module, [*extra, "--status", str(status)], log)

    def consumed() -> int:
        v = read_status(status).get("consumed", 0)
        return int(v) if isinstance(v, int) else 0

    try:
        seen = measure_progress(proc.pid, lambda: proc.poll() is None, consumed, events, timeout)
    except BenchError as exc:
        stop_process(proc)
        raise BenchError(f"{name}: {exc}\n{_tail(log)}") from exc
    return seen.throughput(name, events, peak_rss_bytes(proc.pid)), proc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_redis_functions(args.redis_url)
    rid = run_id()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rep = Report(args, machine(), rid)
    work = Path(tempfile.mkdtemp(prefix=f"tierstream-{rid}-"))
    logs = RESULTS / f"{stamp}-logs"
    base = Settings(
        kafka_bootstrap=args.bootstrap,
        redis_url=args.redis_url,
        redis_key_prefix=f"{rid}:w:",
        topic_prefix=f"{rid}.",
        partitions=args.partitions,
        store="rocksdb://",
        app_id=f"{rid}-worker",
        web_port=free_port(),
        data_dir=str(work / "worker"),
        dev_single_replica=True,  # the benchmark runs on one local broker
    )
    # records kept for the latency phases: each of the three systems gets its own slice
    # of up to rate x seconds (half the worker's max for 30 s was ~100,000 on 2026-12-03)
    tail = max(args.events * 2, 50_000)
    timeout = max(600.0, args.events / 200)
    print(
        f"run {rid}: {args.customers:,} customers, {args.events:,} events, "
        f"phases {','.join(args.phases)}; machine {rep.machine}",
        flush=True,
    )
    procs: list[subprocess.Popen[bytes]] = []
    workers: list[Worker] = []
    try:
        needs_data = {"worker", "baseline", "peer", "profile"} & set(args.phases)
        systems = [k for k in ("worker", "baseline", "peer") if k in args.phases]
        data = None
        if needs_data:
            data = ensure_dataset(args.customers, args.events, tail, args.seed)
            rep.mix = dict(Counter(r.topic for r in read_records(data, 0, args.events)))
            create_topics(base)
            print(f"  loading {args.events:,} records into {base.topic_prefix}* ...", flush=True)
            _n, rep.load_s = load_into_kafka(base, data, args.events)
            print(f"  loaded in {rep.load_s:.1f}s", flush=True)
        offset = args.events  # next unused record of the tail (for latency phases)
        rate = args.latency_rate

        def latency(
            name: str, thr: Throughput, consumed: Callable[[], int], metrics_url: str = ""
        ) -> None:
            """Offered load at half the worker's max (the first system measured sets it).

            Every system reads the same input topics, so the records offered to the
            systems measured before this one are a backlog for it: it first works
            through them (``consumed`` reaches ``offset``), or its latency would measure
            that backlog (it did, before 2026-12-03: the baseline's 2 s / 11 s).
            """
            nonlocal offset, rate
            if "latency" not in args.phases or data is None:
                return
            if offset > args.events:
                wait_until(lambda: consumed() >= offset, timeout, f"{name} to catch up")
            if rate is None:
                rate = thr.events_per_s / 2
            if not rate:
                return
            available = args.events + tail - offset
            print(
                f"  latency: {name} at {rate:,.0f} events/s for {args.latency_seconds:.0f}s",
                flush=True,
            )
            before = _scrape(metrics_url)
            res = offered_load(name, base, data, offset, available, rate, args.latency_seconds)
            offset += res.inputs
            rep.latency[name] = res
            if metrics_url:
                rep.stages = worker_stages(before, _scrape(metrics_url))
            print(
                f"    p50 {res.p50_ms} ms, p99 {res.p99_ms} ms ({res.samples} outputs)", flush=True
            )

        if "worker" in args.phases:
            print("  worker: throughput ...", flush=True)
            w = Worker(base, logs / "worker.log")
            workers.append(w)
            thr = run_throughput(w, args.events, timeout)
            rep.throughput["worker"] = thr
            print(f"    {_rate(thr)}", flush=True)
            try:
                latency("worker", thr, w.consumed, w.url + "/metrics")
            finally:
                w.stop()
            avg, disk, keys = worker_state_bytes(Path(base.data_dir), args.customers)
            thr.state_bytes_per_customer = avg
            thr.notes += f"; RocksDB {disk / 1e6:.0f} MB on disk for {keys:,} keys"

        if "baseline" in args.phases:
            print("  baseline: throughput ...", flush=True)
            status = work / "baseline.json"
            thr, proc = run_plain(
                "baseline", PLAIN["baseline"], plain_argv("baseline", base, args, rid, work),
                status, logs / "baseline.log", args.events, timeout,
            )  # fmt: skip
            procs.append(proc)
            print(f"    {_rate(thr)}", flush=True)
            try:
                latency("baseline", thr, _status_consumed(status))
            finally:
                stop_process(proc)
            st = read_status(status)
            v = st.get("state_bytes_per_customer")
            thr.state_bytes_per_customer = float(v) if isinstance(v, int | float) else None
            thr.notes = (
                "confluent-kafka + BatchProcessor, dict state (no changelog), Redis via the sink"
            )
            rep.throughput["baseline"] = thr

        if "peer" in args.phases:
            print("  peer (Quix Streams): throughput ...", flush=True)
            status = work / "peer.json"
            qdir = quix_dir(work)
            thr, proc = run_plain(
                "quix", PLAIN["peer"], plain_argv("peer", base, args, rid, work),
                status, logs / "quix.log", args.events, timeout,
            )  # fmt: skip
            procs.append(proc)
            print(f"    {_rate(thr)}", flush=True)
            try:
                latency("peer", thr, _status_consumed(status))
            finally:
                stop_process(proc)
            thr.state_bytes_per_customer = _quix_state_bytes(qdir)
            thr.notes = (
                f"Quix Streams, RocksDB state + changelog; {dir_bytes(qdir) / 1e6:.0f} MB on disk"
            )
            rep.throughput["peer"] = thr

        for rnd in range(2, args.rounds + 1) if systems and data is not None else ():
            # rotate the order each round, so no system always runs first or last
            order = systems[(rnd - 1) % len(systems) :] + systems[: (rnd - 1) % len(systems)]
            print(f"  round {rnd}/{args.rounds}: {', '.join(order)} ...", flush=True)
            # the same records on topics of the round's own: the latency phases have
            # appended to the first round's topics
            assert data is not None
            rs = base.with_overrides(topic_prefix=f"{rid}-r{rnd}.")
            create_topics(rs)
            load_into_kafka(rs, data, args.events)
            got: dict[str, Throughput] = {}
            for name in order:
                got[name] = _extra_round(name, rnd, rs, args, rid, work, logs, timeout, workers)
                print(f"    {name}: {_rate(got[name])}", flush=True)
            rep.rounds.append(got)

        if "profile" in args.phases and data is not None:
            rep.profile_md = _profile(base, rid, work, logs, args.events, timeout, workers)

        if "recovery" in args.phases:
            template = typical_state()
            print(f"  recovery: typical state {len(template)} bytes", flush=True)
            for n in [0] + [int(x) for x in args.recovery_sizes.split(",") if x.strip()]:
                s = base.with_overrides(
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
            template = typical_state()
            rep.redis = measure_redis(args.redis_url, f"{rid}:p:", template, args.redis_profiles)
            print(f"  redis: {rep.redis.per_s:,.0f} profiles/s", flush=True)
    except Exception as exc:  # report what was measured, and why the rest is missing
        rep.errors.append(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        for w in workers:
            w.stop()
        for p in procs:
            stop_process(p)
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


#: The module each framework-free or peer system runs as.
PLAIN = {"baseline": "bench.baseline", "peer": "bench.quix_peer"}


def quix_dir(work: Path, tag: str = "") -> Path:
    return work / f"quix{tag}"


def plain_argv(
    name: str, topics: Settings, args: argparse.Namespace, rid: str, work: Path, tag: str = ""
) -> list[str]:
    """Arguments of a baseline or peer run over ``topics``' input; ``tag`` (a round
    number, empty for round 1) gives it its own consumer group, Redis prefix and
    Quix state directory."""
    group, short = ("baseline", "b") if name == "baseline" else ("quix", "q")
    argv = [
        "--bootstrap", args.bootstrap, "--topic-prefix", topics.topic_prefix,
        "--group", f"{rid}-{group}" + (f"-r{tag}" if tag else ""),
        "--redis-url", args.redis_url, "--redis-prefix", f"{rid}:{short}{tag}:",
    ]  # fmt: skip
    if name == "peer":
        argv += ["--state-dir", str(quix_dir(work, tag))]
    return argv


def _extra_round(
    name: str,
    r: int,
    base: Settings,
    args: argparse.Namespace,
    rid: str,
    work: Path,
    logs: Path,
    timeout: float,
    workers: list[Worker],
) -> Throughput:
    """One more throughput run of one system over the round's copy of the input
    (``base`` names its topics), with its own consumer group, state and Redis prefix."""
    if name == "worker":
        s = base.with_overrides(
            app_id=f"{rid}-w{r}",
            data_dir=str(work / f"worker{r}"),
            web_port=free_port(),
            redis_key_prefix=f"{rid}:w{r}:",
        )
        create_topics(s)  # this app id's changelog
        w = Worker(s, logs / f"worker-r{r}.log")
        workers.append(w)
        try:
            return run_throughput(w, args.events, timeout)
        finally:
            w.stop()
    status = work / f"{name}-r{r}.json"
    thr, proc = run_plain(
        "baseline" if name == "baseline" else "quix",
        PLAIN[name],
        plain_argv(name, base, args, rid, work, str(r)),
        status,
        logs / f"{name}-r{r}.log",
        args.events,
        timeout,
    )
    stop_process(proc)
    return thr


def all_rounds(rep: Report) -> list[dict[str, Throughput]]:
    """Round 1 (the main table's runs) and any extra rounds."""
    return [dict(rep.throughput), *rep.rounds] if rep.throughput else []


def _round_ratio(rd: dict[str, Throughput], other: str) -> float | None:
    if "worker" not in rd or other not in rd or rd[other].events_per_s <= 0:
        return None
    return rd["worker"].events_per_s / rd[other].events_per_s


def round_ratios(rep: Report, other: str) -> list[float]:
    """worker / ``other`` throughput of every round that measured both."""
    return [r for r in (_round_ratio(rd, other) for rd in all_rounds(rep)) if r is not None]


def _quix_state_bytes(qdir: Path) -> float | None:
    """Average stored state value per customer in Quix's RocksDB (default column family)."""
    from rocksdict import AccessType, Rdict

    total = count = 0
    for db in qdir.rglob("*.db"):
        if not db.is_dir():
            continue
        try:
            d = Rdict(str(db), access_type=AccessType.read_only())
        except Exception:  # not a RocksDB directory
            continue
        try:
            for _k, v in d.items():
                if isinstance(v, bytes | bytearray) and v.startswith(b"{"):
                    total += len(v)
                    count += 1
        finally:
            d.close()
    return total / count if count else None


def _profile(
    base: Settings, rid: str, work: Path, logs: Path, events: int, timeout: float,
    workers: list[Worker],
) -> str:  # fmt: skip
    """A separate worker run (fresh app id) under py-spy; returns the summary markdown."""
    s = base.with_overrides(
        app_id=f"{rid}-prof",
        redis_key_prefix=f"{rid}:prof:",
        web_port=free_port(),
        data_dir=str(work / "prof"),
    )
    create_topics(s)  # the changelog of this app id
    print("  profile: worker under py-spy ...", flush=True)
    w = Worker(s, logs / "worker-profile.log")
    workers.append(w)
    w.start()
    spy = PySpy(w.pid, RESULTS)
    try:
        seen = measure_progress(w.pid, w.alive, w.consumed, events, timeout)
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


def _rate(t: Throughput) -> str:
    half = t.second_half_per_s
    tail = f" (second half {half:,.0f})" if half else ""
    return f"{t.events_per_s:,.0f} events/s, {t.cpu_per_1000:.3f} CPU s/1k{tail}"


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def render(rep: Report) -> str:
    a = rep.args
    m = rep.machine
    lines = [
        "# tierstream benchmark",
        "",
        f"Run `{rep.run}` at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: "
        f"`python -m bench.run {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, "
        f"load average at start {m['load_avg_at_start']}, Python {m['python']}, "
        f"Linux {m['kernel']}; Kafka 3.9.2 (KRaft) and Redis on loopback, shared with "
        "other work.",
        "",
        f"Input: {a.customers:,} customers, {a.events:,} events "
        + (
            "(" + ", ".join(f"{k} {v:,}" for k, v in sorted(rep.mix.items())) + ")"
            if rep.mix
            else ""
        )
        + f", {a.partitions} partitions, murmur2; loaded in {rep.load_s:.1f}s.",
        "",
    ]
    if rep.throughput:
        lines += [
            "| system | events/s | CPU s / 1k events | p50 ms | p99 ms | peak RSS MiB "
            "| state B/customer | notes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for key, t in rep.throughput.items():
            lat = rep.latency.get(key)
            lines.append(
                f"| {t.name} | {t.events_per_s:,.0f} | {t.cpu_per_1000:.3f} "
                f"| {_fmt(lat.p50_ms if lat else None, '.0f')} "
                f"| {_fmt(lat.p99_ms if lat else None, '.0f')} "
                f"| {t.peak_rss / 2**20:,.0f} | {_fmt(t.state_bytes_per_customer, ',.0f')} "
                f"| {t.notes} |"
            )
        lines.append("")
        halves = [
            f"{t.name} {rate:,.0f} events/s ({cpu:.3f} CPU s/1k)"
            for t in rep.throughput.values()
            if (rate := t.second_half_per_s) and (cpu := t.second_half_cpu_per_1000) is not None
        ]
        if halves:
            lines.append(
                "Second half of each run (the events after the first half, when more of them "
                "touch a customer with history; closer to steady state): " + "; ".join(halves) + "."
            )
            lines.append("")
        w = rep.throughput.get("worker")
        if w and w.committed_after_s is not None:
            lines.append(
                f"Worker: {w.events:,} events in {w.seconds:.1f}s; committed offsets reached "
                f"the end {w.committed_after_s:.1f}s after the last event was counted."
            )
            lines.append("")
    rounds = all_rounds(rep)
    if len(rounds) > 1:
        names = [k for k in ("worker", "baseline", "peer") if any(k in rd for rd in rounds)]
        again = "round 2 runs" if len(rounds) == 2 else f"rounds 2–{len(rounds)} run"
        lines += [
            f"Throughput by round: events/s (CPU s / 1k events). Round 1 is the table "
            f"above; {again} the systems again, interleaved in rotating order, each with "
            "its own consumer group and state, so that machine drift hits every system "
            "alike. The ratios below are the medians.",
            "",
            "| round | " + " | ".join(names) + " | worker/baseline | worker/peer |",
            "| ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: |",
        ]
        for i, rd in enumerate(rounds, 1):
            cells = [
                f"{rd[n].events_per_s:,.0f} ({rd[n].cpu_per_1000:.3f})" if n in rd else "—"
                for n in names
            ]
            wb = _round_ratio(rd, "baseline")
            wp = _round_ratio(rd, "peer")
            lines.append(
                f"| {i} | " + " | ".join(cells) + f" | {_fmt(wb, '.2f')} | {_fmt(wp, '.2f')} |"
            )
        lines.append("")
    if rep.latency:
        lines += [
            "Latency at a fixed offered rate (output CreateTime − input CreateTime of its "
            "cause_event_id):",
            "",
            "| system | offered/s | achieved/s | seconds | inputs | outputs timed "
            "| p50 ms | p99 ms | max ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, lat in rep.latency.items():
            lines.append(
                f"| {name} | {lat.offered_rate:,.0f} | {lat.achieved_rate:,.0f} "
                f"| {lat.seconds:.0f} | {lat.inputs:,} | {lat.samples:,} "
                f"| {_fmt(lat.p50_ms, '.0f')} | {_fmt(lat.p99_ms, '.0f')} "
                f"| {_fmt(lat.max_ms, '.0f')} |"
            )
        lines.append("")
    if rep.stages:
        lines += [
            "Where the worker's latency goes during its latency run (its own histograms; "
            "each quantile is the upper bound of its bucket):",
            "",
            "| stage | observations | p50 | p99 |",
            "| --- | ---: | ---: | ---: |",
        ]
        for label, n, p50, p99 in rep.stages:
            unit = 1 if "events" in label else 1000
            suffix = "" if unit == 1 else " ms"
            lines.append(
                f"| {label} | {n:,} | {_fmt(None if p50 is None else p50 * unit, 'g')}{suffix} "
                f"| {_fmt(None if p99 is None else p99 * unit, 'g')}{suffix} |"
            )
        lines.append("")
    if rep.recovery:
        lines += [
            "Changelog recovery (worker start → `/health` recovered with partitions; the "
            "0-customer row is plain start-up):",
            "",
            "| customers | changelog MB | ready after s | restored keys "
            "| of which bulk-read | bulk read s |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in rep.recovery:
            lines.append(
                f"| {r.customers:,} | {r.changelog_bytes / 1e6:,.0f} | {r.ready_s:.1f} "
                f"| {_fmt(r.restored, ',')} | {_fmt(r.bulk_records, ',')} "
                f"| {_fmt(r.bulk_s, '.1f')} |"
            )
        lines.append("")
    if rep.redis:
        lines += [
            f"Redis profile writes (RedisProfileSink.write, batches of {rep.redis.batch}): "
            f"{rep.redis.profiles:,} profiles in {rep.redis.seconds:.2f}s = "
            f"{rep.redis.per_s:,.0f} profiles/s.",
            "",
        ]
    if rep.profile_md:
        lines += ["## Worker profile", "", rep.profile_md, ""]
    if rep.errors:
        lines += ["## Errors", "", *[f"- {e}" for e in rep.errors], ""]
    lines += ["## Ratios", "", "```", ratios(rep), "```", ""]
    return "\n".join(lines)


def ratios(rep: Report) -> str:
    """The ratios, last: the median over the rounds, with their range and count."""
    out = []
    for other, label in (("baseline", "worker/baseline"), ("peer", "worker/peer    ")):
        rs = round_ratios(rep, other)
        if not rs:
            continue
        med = statistics.median(rs)
        spread = f", range {min(rs):.2f}–{max(rs):.2f}" if len(rs) > 1 else ""
        per = ", ".join(f"{x:.2f}" for x in rs)
        out.append(
            f"{label} throughput: {med:.2f} (median of {len(rs)} round"
            f"{'s' if len(rs) > 1 else ''}{spread}; per round {per})"
        )
    return "\n".join(out) or "(no ratios: worker, baseline or peer not measured)"


if __name__ == "__main__":
    raise SystemExit(main())
