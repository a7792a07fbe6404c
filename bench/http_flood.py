"""Tiering throughput with and without a flood of bad-token HTTP requests, side by side.

    python -m bench.http_flood [--events 40000] [--rounds 3] [--connections 16]
                               [--flood-rate 0] [--worker-env NAME=VALUE ...]

Not a timed test: a benchmark that reports figures. Each round runs two workers (as
shipped: ``python -m streams.cli worker``, RocksDB, acked outputs, Redis) at the same
time over the same loaded input, each with its own app id (so each reads the input
from the start), while a separate process floods one of them with
``GET /customers/{id}`` requests carrying a bad bearer token and made-up ids, from
another loopback address (127.0.0.2: the harness's own ``/metrics`` polls come from
127.0.0.1 and are a different client). Side by side, because on a shared machine the
other processes' load moves from minute to minute: both workers see the same load,
only the flood differs. Throughput is events over the time from the first event consumed to
the last (bench/worker_bench.py); the ratio flooded / quiet is taken per round and its
median reported. The flood's request rate, its answers by status and its own CPU are
reported too: on a two-core machine the flood client competes for the CPU as well.

The flood is bounded: ``--connections`` keep-alive connections, each sending its next
request when the previous answer arrived (``--flood-rate`` caps the total requests per
second; 0: as fast as answered). ``--worker-env`` passes settings to the flooded and
the quiet worker alike, e.g. ``TIERSTREAM_API_CLIENT_RATE=100000`` with
``TIERSTREAM_API_AUTH_FAILURES_PER_MIN=1000000`` and
``TIERSTREAM_API_CLIENT_CONCURRENCY=10000`` to see the flood's cost without the limits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    REPO_ROOT,
    Throughput,
    cpu_seconds,
    delete_redis_prefix,
    delete_topics,
    install_redis_functions,
    machine,
    run_id,
    stop_process,
    topics_containing,
)
from bench.data import ensure_dataset, load_into_kafka
from bench.worker_bench import Worker, run_throughput
from streams.settings import Settings
from streams.topics import create_topics

FLOOD_SOURCE = "127.0.0.2"


# -- the flood client (a separate process: python -m bench.http_flood --flood ...) ------


async def _flood(url: str, connections: int, rate: float, stats: Counter[str]) -> None:
    import aiohttp

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    interval = connections / rate if rate > 0 else 0.0
    connector = aiohttp.TCPConnector(limit=connections, local_addr=(FLOOD_SOURCE, 0))
    headers = {"Authorization": "Bearer tst_" + "x" * 43}  # well formed, never issued
    timeout = aiohttp.ClientTimeout(total=10)

    async def one(session: aiohttp.ClientSession) -> None:
        rng = random.Random()
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with session.get(
                    f"{url}/customers/C{rng.randrange(10**7):07d}", headers=headers
                ) as r:
                    await r.read()
                    stats[str(r.status)] += 1
            except (TimeoutError, aiohttp.ClientError, OSError):
                stats["error"] += 1
                await asyncio.sleep(0.05)  # the worker not up yet
            if interval:
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(connections)]
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def flood_main(url: str, connections: int, rate: float, out: Path) -> int:
    stats: Counter[str] = Counter()
    started = time.monotonic()
    asyncio.run(_flood(url, connections, rate, stats))
    out.write_text(json.dumps({"seconds": time.monotonic() - started, "answers": stats}))
    return 0


# -- the benchmark ---------------------------------------------------------------------


@dataclass
class Run:
    round: int
    flooded: bool
    throughput: Throughput
    flood_seconds: float = 0.0
    flood_answers: dict[str, int] = field(default_factory=dict)
    flood_cpu_s: float = 0.0

    @property
    def flood_per_s(self) -> float:
        answered = sum(v for k, v in self.flood_answers.items() if k != "error")
        return answered / self.flood_seconds if self.flood_seconds else 0.0


def _start_flood(
    url: str, connections: int, rate: float, out: Path, log: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.http_flood",
            "--flood",
            url,
            "--connections",
            str(connections),
            "--flood-rate",
            str(rate),
            "--flood-out",
            str(out),
        ],
        cwd=REPO_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _settings(base: Settings, rid: str, tag: str, work: Path) -> Settings:
    s = base.with_overrides(
        app_id=f"{rid}-{tag}",
        redis_key_prefix=f"{rid}:{tag}:",
        data_dir=str(work / tag),
        web_port=_free_port(),
    )
    create_topics(s)  # this app id's changelog
    return s


def one_round(
    base: Settings, rid: str, r: int, args: argparse.Namespace, work: Path
) -> tuple[Run, Run]:
    """Two workers at the same time over the same input, one of them flooded.

    Side by side rather than one after the other: on a shared machine the load of
    other processes changes from minute to minute, and both workers then see the same
    load; only the flood differs.
    """
    quiet_s = _settings(base, rid, f"{r}q", work)
    loud_s = _settings(base, rid, f"{r}f", work)
    quiet = Worker(quiet_s, work / "logs" / f"worker-{r}q.log")
    loud = Worker(loud_s, work / "logs" / f"worker-{r}f.log")
    out = work / f"flood-{r}.json"
    flood = _start_flood(
        f"http://127.0.0.1:{loud_s.web_port}",
        args.connections,
        args.flood_rate,
        out,
        work / "logs" / f"flood-{r}.log",
    )
    timeout = max(600.0, args.events / 100)
    try:
        cpu_before = cpu_seconds(flood.pid)
        with ThreadPoolExecutor(2) as pool:
            # the flooded one first: if anything, the quiet one gets the later start
            loud_f = pool.submit(run_throughput, loud, args.events, timeout)
            quiet_f = pool.submit(run_throughput, quiet, args.events, timeout)
            loud_run = Run(r, True, loud_f.result())
            quiet_run = Run(r, False, quiet_f.result())
        loud_run.flood_cpu_s = cpu_seconds(flood.pid) - cpu_before
    finally:
        stop_process(flood, timeout=30)
        quiet.stop()
        loud.stop()
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads(out.read_text())
        loud_run.flood_seconds = float(doc["seconds"])
        loud_run.flood_answers = {str(k): int(v) for k, v in doc["answers"].items()}
    return quiet_run, loud_run


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report(runs: list[Run], args: argparse.Namespace) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"# HTTP flood vs tiering throughput ({when})",
        "",
        f"machine: {machine()}",
        f"input: {args.events:,} events, {args.customers:,} customers; flood: "
        f"{args.connections} connections from {FLOOD_SOURCE}, "
        f"{'as fast as answered' if not args.flood_rate else f'{args.flood_rate:g} req/s cap'}"
        + (f"; worker env {args.worker_env}" if args.worker_env else ""),
        "",
        "| round | run | events/s | CPU ms/event | flood req/s | flood answers "
        "| flood client CPU s |",
        "| ---: | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for run in runs:
        tp = run.throughput
        answers = ", ".join(f"{k}: {v:,}" for k, v in sorted(run.flood_answers.items()))
        lines.append(
            f"| {run.round} | {'flooded' if run.flooded else 'quiet'} | "
            f"{tp.events_per_s:,.0f} | {tp.cpu_per_1000:.3f} | "
            f"{run.flood_per_s:,.0f} | {answers or '-'} | {run.flood_cpu_s:.1f} |"
        )
    ratios, cpu_ratios = [], []
    for r in sorted({run.round for run in runs}):
        quiet = [x.throughput for x in runs if x.round == r and not x.flooded]
        loud = [x.throughput for x in runs if x.round == r and x.flooded]
        if quiet and loud:
            ratios.append(loud[0].events_per_s / quiet[0].events_per_s)
            cpu_ratios.append(loud[0].cpu_per_1000 / quiet[0].cpu_per_1000)
    if ratios:
        lines += [
            "",
            f"flooded / quiet throughput per round: {', '.join(f'{x:.3f}' for x in ratios)}; "
            f"median **{statistics.median(ratios):.3f}**",
            f"flooded / quiet worker CPU per event: {', '.join(f'{x:.3f}' for x in cpu_ratios)}; "
            f"median **{statistics.median(cpu_ratios):.3f}**",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--customers", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--flood-rate", type=float, default=0.0)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--out", type=Path, help="also write the report here (markdown)")
    # the flood client's own arguments (internal)
    ap.add_argument("--flood", help=argparse.SUPPRESS)
    ap.add_argument("--flood-out", type=Path, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.flood:
        return flood_main(args.flood, args.connections, args.flood_rate, args.flood_out)
    for pair in args.worker_env:
        name, _, value = pair.partition("=")
        os.environ[name] = value  # the workers inherit the environment
    install_redis_functions(args.redis_url)
    rid = run_id()
    work = Path(tempfile.mkdtemp(prefix=f"tierstream-{rid}-flood-"))
    (work / "logs").mkdir()
    base = Settings(
        kafka_bootstrap=args.bootstrap,
        redis_url=args.redis_url,
        topic_prefix=f"{rid}.",
        partitions=args.partitions,
        store="rocksdb://",
        dev_single_replica=True,  # one local broker
    )
    runs: list[Run] = []
    try:
        create_topics(base.with_overrides(app_id=f"{rid}-load"))
        data = ensure_dataset(args.customers, args.events, 0, args.seed)
        n, took = load_into_kafka(base, data, args.events)
        print(f"loaded {n:,} events in {took:.1f}s; work dir {work}", flush=True)
        for r in range(args.rounds):
            for run in one_round(base, rid, r, args, work):
                runs.append(run)
                print(
                    f"  round {r} {'flooded' if run.flooded else 'quiet  '}: "
                    f"{run.throughput.events_per_s:,.0f} events/s, flood "
                    f"{run.flood_per_s:,.0f} req/s {run.flood_answers}",
                    flush=True,
                )
    finally:
        delete_topics(args.bootstrap, topics_containing(args.bootstrap, rid))
        delete_redis_prefix(args.redis_url, f"{rid}:")
    text = report(runs, args)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
