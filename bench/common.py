"""Process accounting, polling and clean-up shared by every benchmark phase.

Why measure from outside (``/proc``) instead of asking each process: the worker is run
exactly as shipped and cannot report on itself, so the baseline and the peer are
measured the same way for a fair comparison (CPU = utime + stime of the whole process,
all threads; peak RSS = VmHWM).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A benchmark phase could not produce a figure (process died, timed out, ...)."""


def run_id() -> str:
    """Unique per run: names topics, groups, app ids and Redis keys of this run."""
    return f"bench{time.strftime('%H%M%S')}{secrets.token_hex(3)}"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the peak resident set size of a live process."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmHWM for pid {pid}")


def machine() -> dict[str, str]:
    """What the figures were measured on (they mean little without it)."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    import platform

    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": model,
        "ram_gib": f"{mem_kb / 1024 / 1024:.1f}",
        "load_avg_at_start": load,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def http_json(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def http_text(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode())


def metric_sum(text: str, name: str) -> float:
    """Sum of all samples of one Prometheus metric in an exposition text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in "{ "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def histogram_buckets(
    text: str, name: str, labels: dict[str, str] | None = None
) -> dict[float, float]:
    """Cumulative bucket counts ``{le: count}`` of one Prometheus histogram series.

    ``labels`` selects one labelled series, e.g. ``{"stage": "outputs"}``; none takes
    a histogram without labels.
    """
    want = labels or {}
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"{name}_bucket"
        and {k: v for k, v in sample.labels.items() if k != "le"} == want
    }


def histogram_quantile(
    before: dict[float, float], after: dict[float, float], q: float
) -> float | None:
    """The ``q`` quantile of what a histogram observed between two scrapes, as the
    upper bound of the bucket it falls in (Prometheus' estimate without interpolation:
    an upper bound, never flattering). None when nothing was observed."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    for b, c in zip(bounds, counts, strict=True):
        if c >= rank:
            return b
    return bounds[-1]


def wait_until(pred: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> float:
    """Poll ``pred`` until true; returns the time.monotonic() when it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(every)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Throughput:
    """One system's run over the loaded input."""

    name: str
    events: int
    seconds: float  # first event consumed -> last event processed
    cpu_s: float  # process CPU over the same interval
    peak_rss: int
    state_bytes_per_customer: float | None = None
    notes: str = ""
    committed_after_s: float | None = None  # last event -> group commit reached the end
    #: The run's second half: (events, seconds, CPU seconds) from the first poll that
    #: saw half the input done to the end. Later events cost more (more of them touch a
    #: customer with history), so this is closer to steady state than the whole run.
    second_half: tuple[int, float, float] | None = None
    #: process start -> first event counted (imports, group join, state restore)
    start_s: float | None = None
    #: states restored before the live phase, and the seconds the restore took
    restored: int | None = None
    restore_s: float | None = None
    #: share of state reads served by the state cache (worker, baseline)
    cache_hit_share: float | None = None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_s / self.events * 1000 if self.events else 0.0

    @property
    def second_half_per_s(self) -> float | None:
        if self.second_half is None or self.second_half[1] <= 0:
            return None
        return self.second_half[0] / self.second_half[1]

    @property
    def second_half_cpu_per_1000(self) -> float | None:
        if self.second_half is None or self.second_half[0] <= 0:
            return None
        return self.second_half[2] / self.second_half[0] * 1000


class Progress(NamedTuple):
    """What ``measure_progress`` saw: wall clock (monotonic) and process CPU seconds."""

    t_first: float  # first poll with progress
    t_done: float  # first poll with everything done
    cpu_first: float
    cpu_done: float
    n_half: int  # events done at the first poll that saw at least half of them
    t_half: float
    cpu_half: float

    def throughput(self, name: str, events: int, peak_rss: int, **extra: Any) -> Throughput:
        return Throughput(
            name=name,
            events=events,
            seconds=self.t_done - self.t_first,
            cpu_s=self.cpu_done - self.cpu_first,
            peak_rss=peak_rss,
            second_half=(
                events - self.n_half,
                self.t_done - self.t_half,
                self.cpu_done - self.cpu_half,
            ),
            **extra,
        )


def measure_progress(
    pid: int,
    alive: Callable[[], bool],
    progress: Callable[[], int],
    total: int,
    timeout: float,
    every: float = 0.1,
    every_mid: float = 1.0,
) -> Progress:
    """Watch a process work through ``total`` events.

    t_first is the first poll that saw progress > 0 (so up to ``every`` late: the
    figures are taken over at least tens of seconds, where that is noise); the half
    mark is the first poll that saw at least ``total / 2``. Between the first event
    and the last second before the projected end it polls at most every ``every_mid``
    seconds: asking the worker costs it CPU (a ``/metrics`` scrape was 5% of its
    samples at 10 polls a second, py-spy 2026-12-07), which the baseline's and the
    peer's status files do not.
    """
    deadline = time.monotonic() + timeout
    t_first = cpu_first = None
    half: tuple[int, float, float] | None = None
    last_report = time.monotonic()
    while time.monotonic() < deadline:
        if not alive():
            raise BenchError(f"process {pid} exited while processing")
        try:
            n = progress()
        except OSError:
            n = 0
        now = time.monotonic()
        if n > 0 and t_first is None:
            t_first, cpu_first = now, cpu_seconds(pid)
        if half is None and n >= total / 2 and n < total:
            half = (n, now, cpu_seconds(pid))
        if n >= total:
            assert t_first is not None and cpu_first is not None
            cpu_done = cpu_seconds(pid)
            if half is None:  # went from below half to done between two polls
                half = (n, now, cpu_done)
            return Progress(t_first, now, cpu_first, cpu_done, *half)
        if now - last_report > 10:
            print(f"    ... {n:,}/{total:,} events", flush=True)
            last_report = now
        pause = every
        if t_first is not None and n > 0 and now > t_first:
            left = (total - n) / (n / (now - t_first))  # projected seconds to the end
            pause = min(every_mid, max(every, left / 2 - every))
            if half is None:  # the half mark too is taken at ``every``
                to_half = (total / 2 - n) / (n / (now - t_first))
                pause = min(pause, max(every, to_half / 2 - every))
        time.sleep(pause)
    raise BenchError(f"process {pid} did not finish {total} events in {timeout:.0f}s")


class GroupOffsets:
    """Committed offsets of a consumer group versus the ends of the input topics."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.c = Consumer(settings.confluent_config(**{"group.id": group}))
        self.tps: list[TopicPartition] = []
        for t in settings.consumed_topics:
            meta = self.c.list_topics(t, timeout=10).topics[t]
            self.tps.extend(TopicPartition(t, p) for p in meta.partitions)
        self.ends = {
            (tp.topic, tp.partition): self.c.get_watermark_offsets(tp, timeout=10)[1]
            for tp in self.tps
        }

    def caught_up(self) -> bool:
        for tp in self.c.committed(self.tps, timeout=10):
            end = self.ends[(tp.topic, tp.partition)]
            if end > 0 and tp.offset < end:
                return False
        return True

    def close(self) -> None:
        self.c.close()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it does not exit; only ever this one pid."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    names = list(names)
    if not names:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # already gone
            fut.result()


def topics_containing(bootstrap: str, text: str) -> list[str]:
    """Every topic whose name contains ``text`` (a run id: topics, changelogs, Quix's)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=10)
    return [t for t in md.topics if text in t]


def install_redis_functions(redis_url: str) -> None:
    """Load tierstream's Redis Function library (what `tierstream redis install-functions`
    does): the worker and the peers write profiles through it."""
    import redis

    from streams.redis_functions import library_source

    r = redis.Redis.from_url(redis_url)
    try:
        r.function_load(library_source(), replace=True)
    finally:
        r.close()


def delete_redis_prefix(redis_url: str, prefix: str) -> int:
    import redis

    r = redis.Redis.from_url(redis_url)
    n = 0
    batch: list[bytes] = []
    for k in r.scan_iter(match=f"{prefix}*", count=5000):
        batch.append(k)
        if len(batch) >= 5000:
            n += r.unlink(*batch)
            batch.clear()
    if batch:
        n += r.unlink(*batch)
    r.close()
    return n


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def service_pids() -> dict[str, list[int]]:
    """The Kafka broker's and Redis' processes on this machine (for their CPU), by
    command line: ``kafka.Kafka`` and ``redis-server``."""
    import psutil

    out: dict[str, list[int]] = {"kafka": [], "redis": []}
    for p in psutil.process_iter(["pid", "cmdline", "name"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if "kafka.Kafka" in cmd:
            out["kafka"].append(p.info["pid"])
        elif (p.info.get("name") or "").startswith("redis-server") or "redis-server" in cmd:
            out["redis"].append(p.info["pid"])
    return out


def pids_cpu(pids: list[int]) -> float:
    """utime + stime of these processes, seconds (0 for any that has gone)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total
