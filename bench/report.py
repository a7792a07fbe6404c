"""The benchmark's report: what bench.run measured, as markdown, with the ratios last.

Kept apart from the orchestration (bench/run.py) so its arithmetic can be tested
without a broker (tests/bench/test_report.py). It reports figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import Throughput
from bench.latency import Latency
from bench.recovery import Recovery
from bench.redis_bench import RedisThroughput

#: The previous design's full run (bench/LATEST.md of 2026-12-03 18:56 UTC, run
#: bench182649f7b528: a bank 6 days old, 100,000 customers, 1,000,000 events, state
#: format v3, the state cache holding decoded states), kept for the side-by-side
#: table: system -> (events/s, CPU µs/event, p50 ms, p99 ms, peak RSS MiB, state B).
PREVIOUS_RUN = "2026-12-03 18:56 UTC, `python -m bench.run` (6-day-old bank, state v3)"
PREVIOUS: dict[str, tuple[float, float, float, float, float, float | None]] = {
    "worker": (6_768, 138, 325, 1_193, 1_205, 687),
    "baseline": (9_067, 96, 244, 1_308, 1_370, 693),
    "peer": (5_357, 187, 3_865, 7_945, 870, None),
}
PREVIOUS_RATIOS = "worker/baseline 0.69 (0.63–0.75), worker/peer 1.19 (1.00–1.26)"
#: The core alone (bench.history, cold: every state read from bytes) with state format
#: v3 (commit 7df4541), 2026-12-07 10:15 UTC, 4,000 customers: days -> µs/event.
PREVIOUS_CORE = {0: 52.7, 30: 81.8, 90: 130.3, 180: 122.5}

SYSTEM_LABELS = {
    "worker": "tierstream worker",
    "ref": "worker @ref",
    "baseline": "baseline",
    "peer": "quix",
}


@dataclass
class Sweep:
    """One history length of the sweep: the core alone and the systems on its bank."""

    days: int
    customers: int
    state_mean: float
    core: dict[str, Any] | None = None  # bench.history's measure() of this bank
    systems: dict[str, Throughput] = field(default_factory=dict)


@dataclass
class Scale:
    """The same data through one worker process and through ``n`` of them."""

    workers: int
    throughput: Throughput
    per_worker_cpu_s: list[float] = field(default_factory=list)
    #: the machine over the run (bench/systems.py ``MachineUse``), when measured
    machine: Any = None
    #: runs of the same round are compared with each other
    round: int = 0


@dataclass
class Report:
    args: argparse.Namespace
    machine: dict[str, str]
    run: str
    #: The headline bank: days of history, customers, serialized state mean (B)
    bank: dict[str, Any] = field(default_factory=dict)
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
    sweep: list[Sweep] = field(default_factory=list)
    scale: list[Scale] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


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


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def us_per_event(t: Throughput) -> float:
    return t.cpu_s / t.events * 1e6 if t.events else 0.0


def _half_us(t: Throughput) -> float | None:
    cpu = t.second_half_cpu_per_1000
    return None if cpu is None else cpu * 1000


def rate(t: Throughput) -> str:
    half = t.second_half_per_s
    tail = f" (second half {half:,.0f})" if half else ""
    return f"{t.events_per_s:,.0f} events/s, {us_per_event(t):.0f} CPU µs/event{tail}"


def _restore(t: Throughput) -> str:
    if t.restored is None:
        return "—"
    took = f" in {t.restore_s:.1f} s" if t.restore_s is not None else ""
    return f"{t.restored:,}{took}"


def render(rep: Report) -> str:
    a = rep.args
    m = rep.machine
    b = rep.bank
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
    ]
    if b:
        lines += [
            f"Bank: {b['customers']:,} simulated customers with {b['days']} days of history "
            f"(serialized state mean {b['state_mean']:,.0f} B), built once through the core "
            "(bench/bank.py); every system first restores these states its own way "
            "(worker: its changelog, bulk recovery; baseline: a topic of states read into "
            "its dict; Quix: its changelog, Quix's recovery), then processes the "
            f"{a.events:,} live events that follow"
            + (
                " (" + ", ".join(f"{k} {v:,}" for k, v in sorted(rep.mix.items())) + ")"
                if rep.mix
                else ""
            )
            + f", {a.partitions} partitions, murmur2; loaded in {rep.load_s:.1f}s. State "
            f"cache (worker and baseline): {b.get('cache', 0):,} customers, fewer than the "
            "bank's.",
            "",
        ]
    if rep.throughput:
        lines += [
            "| system | events/s | CPU µs/event | p50 ms | p99 ms | peak RSS MiB "
            "| states restored | start to first event s | cache hits | state B/customer "
            "| notes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for key, t in rep.throughput.items():
            lat = rep.latency.get(key)
            hits = None if t.cache_hit_share is None else t.cache_hit_share * 100
            lines.append(
                f"| {t.name} | {t.events_per_s:,.0f} | {us_per_event(t):.0f} "
                f"| {_fmt(lat.p50_ms if lat else None, '.0f')} "
                f"| {_fmt(lat.p99_ms if lat else None, '.0f')} "
                f"| {t.peak_rss / 2**20:,.0f} | {_restore(t)} | {_fmt(t.start_s, '.1f')} "
                f"| {_fmt(hits, '.0f')}"
                f"{'%' if hits is not None else ''} "
                f"| {_fmt(t.state_bytes_per_customer, ',.0f')} | {t.notes} |"
            )
        lines.append("")
        halves = [
            f"{t.name} {half:,.0f} events/s ({cpu:.0f} CPU µs/event)"
            for t in rep.throughput.values()
            if (half := t.second_half_per_s) and (cpu := _half_us(t)) is not None
        ]
        if halves:
            lines.append("Second half of each run: " + "; ".join(halves) + ".")
            lines.append("")
        w = rep.throughput.get("worker")
        if w and w.committed_after_s is not None:
            lines.append(
                f"Worker: {w.events:,} events in {w.seconds:.1f}s; committed offsets reached "
                f"the end {w.committed_after_s:.1f}s after the last event was counted."
            )
            lines.append("")
        lines += render_previous(rep)
    rounds = all_rounds(rep)
    if len(rounds) > 1:
        names = [k for k in ("worker", "ref", "baseline", "peer") if any(k in rd for rd in rounds)]
        again = "round 2 runs" if len(rounds) == 2 else f"rounds 2–{len(rounds)} run"
        lines += [
            f"Throughput by round: events/s (CPU µs/event). Round 1 is the table "
            f"above; {again} the systems again, interleaved in rotating order, each with "
            "its own consumer group and state, so that machine drift hits every system "
            "alike. The ratios below are the medians.",
            "",
            "| round | " + " | ".join(names) + " | worker/baseline | worker/peer | worker/ref |",
            "| ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: | ---: |",
        ]
        for i, rd in enumerate(rounds, 1):
            cells = [
                f"{rd[n].events_per_s:,.0f} ({us_per_event(rd[n]):.0f})" if n in rd else "—"
                for n in names
            ]
            wb = _round_ratio(rd, "baseline")
            wp = _round_ratio(rd, "peer")
            wr = _round_ratio(rd, "ref")
            lines.append(
                f"| {i} | "
                + " | ".join(cells)
                + f" | {_fmt(wb, '.2f')} | {_fmt(wp, '.2f')} | {_fmt(wr, '.2f')} |"
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
    lines += render_sweep(rep)
    lines += render_scale(rep)
    if rep.recovery:
        lines += [
            "Changelog recovery (worker start → `/health` recovered with partitions; the "
            "0-customer row is plain start-up; every customer a median state of the bank):",
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


def render_previous(rep: Report) -> list[str]:
    """This run's round 1 next to the previous design's full run."""
    rows = []
    for key, (eps, cpu, _p50, p99, rss, _st) in PREVIOUS.items():
        t = rep.throughput.get(key)
        lat = rep.latency.get(key)
        now = (
            f"{t.events_per_s:,.0f} | {us_per_event(t):.0f} | "
            f"{_fmt(lat.p99_ms if lat else None, '.0f')} | {t.peak_rss / 2**20:,.0f}"
            if t
            else "— | — | — | —"
        )
        rows.append(
            f"| {SYSTEM_LABELS[key]} | {eps:,.0f} | {cpu:.0f} | {p99:,.0f} | {rss:,.0f} | {now} |"
        )
    return [
        f"Before and after: the previous design ({PREVIOUS_RUN}; ratios {PREVIOUS_RATIOS}) "
        "against this run's round 1:",
        "",
        "| system | before events/s | before CPU µs/event | before p99 ms | before peak RSS MiB "
        "| now events/s | now CPU µs/event | now p99 ms | now peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
    ]


def render_sweep(rep: Report) -> list[str]:
    if not rep.sweep:
        return []
    s0 = rep.sweep[0]
    names = [k for k in ("worker", "baseline", "peer") if any(k in s.systems for s in rep.sweep)]
    head = " | ".join(f"{SYSTEM_LABELS[n]} CPU µs/event (events/s)" for n in names)
    lines = [
        f"CPU per event against the customers' history ({s0.customers:,} customers; the "
        "core alone: `bench.history`'s cold measure of the same bank, `BatchProcessor` "
        "with no I/O and no state cache, input decoding included; the systems: "
        f"{rep.args.sweep_events:,} live events after restoring the bank, one run each; "
        f"v3 core: the state format before 2026-12-07, {PREVIOUS_CORE[90]:.0f} µs at "
        "90 days):",
        "",
        f"| history | state B mean | v3 core µs/event | core µs/event | {head} |",
        "| ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for s in rep.sweep:
        core = s.core["cpu_us_per_event"] if s.core else None
        cells = [
            f"{us_per_event(t):.0f} ({t.events_per_s:,.0f})" if (t := s.systems.get(n)) else "—"
            for n in names
        ]
        label = "fresh" if s.days == 0 else f"{s.days} d"
        lines.append(
            f"| {label} | {s.state_mean:,.0f} | {_fmt(PREVIOUS_CORE.get(s.days), '.1f')} "
            f"| {_fmt(core, '.1f')} | " + " | ".join(cells) + " |"
        )
    lines.append("")
    return lines


def render_scale(rep: Report) -> list[str]:
    if not rep.scale:
        return []
    ones = {s.round: s for s in rep.scale if s.workers == 1}
    lines = [
        "One worker process against several on the same data and broker (started and "
        "ready before the input was loaded; throughput over all of them, CPU summed; "
        "the machine: how busy all its CPUs were over the run, and CPU seconds of the "
        "workers, the Kafka broker, Redis and everything else, which includes the "
        "benchmark's loader and other work on the machine):",
        "",
        "| round | workers | events/s | × one worker | CPU µs/event | CPU s per worker "
        "| machine busy | workers / Kafka / Redis / other CPU s |",
        "| ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for s in rep.scale:
        t = s.throughput
        one = ones.get(s.round)
        x = t.events_per_s / one.throughput.events_per_s if one else None
        per = ", ".join(f"{c:.1f}" for c in s.per_worker_cpu_s)
        m = s.machine
        use = (
            f"{m.busy_share:.0%} of {m.cpus} | {m.workers_s:.1f} / {m.kafka_s:.1f} / "
            f"{m.redis_s:.1f} / {m.other_s:.1f}"
            if m is not None
            else "— | —"
        )
        lines.append(
            f"| {s.round + 1} | {s.workers} | {t.events_per_s:,.0f} | {_fmt(x, '.2f')} "
            f"| {us_per_event(t):.0f} | {per} | {use} |"
        )
    lines.append("")
    return lines


def ratios(rep: Report) -> str:
    """The ratios, last: the median over the rounds, with their range and count."""
    out = []
    for other, label in (
        ("baseline", "worker/baseline"),
        ("peer", "worker/peer    "),
        ("ref", "worker/ref     "),
    ):
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
