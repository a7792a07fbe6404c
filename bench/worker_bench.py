"""The tierstream worker as shipped: ``python -m streams.cli worker`` in a subprocess.

Started with a fresh app id (so it reads the loaded input from the beginning), the
RocksDB store and the same environment the integration tests use. Throughput is the
number of input events over the time from the first event the worker counted
(``tierstream_events_consumed_total`` > 0) to the moment it counted all of them; CPU is
the worker process's utime + stime over the same interval. The group's committed
offsets reaching the end is checked too and reported as the commit lag.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    REPO_ROOT,
    BenchError,
    GroupOffsets,
    Throughput,
    dir_bytes,
    http_json,
    http_text,
    measure_progress,
    metric_sum,
    peak_rss_bytes,
    stop_process,
    wait_until,
)
from streams.settings import Settings

#: An ops token for this benchmark's workers only: /health shows "recovering" to ops.
_OPS_TOKEN = secrets.token_hex(16)


def worker_env(s: Settings) -> dict[str, str]:
    env = dict(os.environ)
    digest = hashlib.sha256(_OPS_TOKEN.encode()).hexdigest()
    env["TIERSTREAM_API_TOKENS"] = f"bench:ops:{digest}"
    env.update(
        {
            "KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "REDIS_URL": s.redis_url,
            "TIERSTREAM_REDIS_PREFIX": s.redis_key_prefix,
            "TIERSTREAM_TOPIC_PREFIX": s.topic_prefix,
            "TIERSTREAM_PARTITIONS": str(s.partitions),
            "TIERSTREAM_STORE": s.store,
            "TIERSTREAM_APP_ID": s.app_id,
            "TIERSTREAM_WEB_PORT": str(s.web_port),
            "TIERSTREAM_DATA_DIR": s.data_dir,
            "TIERSTREAM_PROCESSING_GUARANTEE": s.processing_guarantee,
            # simulated event time: wall-clock ticks would fire every timer at once
            "TIERSTREAM_TICK_INTERVAL": "0",
        }
    )
    return env


@dataclass
class Worker:
    settings: Settings
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    #: extra ``tierstream worker`` arguments (e.g. ``--state-cache N``)
    args: tuple[str, ...] = ()
    started_at: float = 0.0
    #: the source tree it runs from (``--worker-ref``: another ref's extracted tree)
    root: Path = REPO_ROOT

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        _mark_redis_synced(self.settings)
        log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        env = worker_env(self.settings)
        if self.root != REPO_ROOT:
            env["PYTHONPATH"] = str(self.root)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning", *self.args],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def consumed(self) -> int:
        try:
            text = http_text(self.url + "/metrics")
        except OSError:
            return 0
        return int(metric_sum(text, "tierstream_events_consumed_total"))

    def metrics_text(self) -> str:
        try:
            return http_text(self.url + "/metrics")
        except OSError:
            return ""

    def aligner_timeouts(self) -> str:
        """Aligner waits that ran out, by reason (a release that went ahead without an
        input that might hold earlier records); "0" when there were none."""
        try:
            text = http_text(self.url + "/metrics")
        except OSError:
            return "unknown"
        parts = []
        for reason in ("lag", "idle"):
            n = metric_sum(text, f'tierstream_aligner_timeouts_total{{reason="{reason}"}}')
            if n:
                parts.append(f"{n:.0f} {reason}")
        return ", ".join(parts) or "0"

    def health(self) -> dict[str, object] | None:
        try:
            body = http_json(
                self.url + "/health", headers={"Authorization": f"Bearer {_OPS_TOKEN}"}
            )
        except OSError:  # not serving yet (HTTPError 503 is an OSError too)
            return None
        return body if isinstance(body, dict) else None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=60)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def _mark_redis_synced(s: Settings) -> None:
    """Tell the worker its (fresh, empty) Redis prefix is in sync with its (empty) table.

    The worker rewrites every profile of a partition whose Redis "synced" marker is
    missing (streams/worker/housekeeping.py ``resync_lost_partitions``). In the benchmark
    the prefix is new and so is the state, so there is nothing to resync; without the markers the
    resync would scan the table in the middle of the measurement (and, in the recovery
    phase, rewrite every restored profile). Skipped on a worker without resyncs.
    """
    import asyncio

    from streams.metrics import Metrics
    from streams.redis_sink import RedisProfileSink, connect

    async def mark() -> None:
        client = connect(s.redis_url, s.redis_password)
        try:
            sink = RedisProfileSink(client, s.redis_key_prefix, Metrics())
            mark_synced = getattr(sink, "mark_synced", None)
            if mark_synced is not None:
                for p in range(s.partitions):
                    await mark_synced(p)
        finally:
            await client.aclose()

    asyncio.run(mark())


def run_throughput(worker: Worker, events: int, timeout: float) -> Throughput:
    """Start the worker and time it through ``events`` loaded input events."""
    worker.start()
    try:
        seen = measure_progress(worker.pid, worker.alive, worker.consumed, events, timeout)
    except BenchError as exc:
        raise BenchError(f"worker: {exc}\n{worker.tail()}") from exc
    offsets = GroupOffsets(worker.settings, worker.settings.app_id)
    try:
        t_commit = wait_until(offsets.caught_up, 60, "worker group commit", every=0.1)
    finally:
        offsets.close()
    timeouts = worker.aligner_timeouts()
    text = worker.metrics_text()
    hits = metric_sum(text, 'tierstream_state_cache_lookups_total{result="hit"}')
    misses = metric_sum(text, 'tierstream_state_cache_lookups_total{result="miss"}')
    restored = metric_sum(text, "tierstream_changelog_restored_records_total")
    thr = seen.throughput(
        "tierstream worker",
        events,
        peak_rss_bytes(worker.pid),
        committed_after_s=t_commit - seen.t_done,
        notes=(
            "faust consumer group + tierstream intake, RocksDB table + changelog, outputs "
            "acked, Redis profiles; "
            f"aligner waits that ran out: {timeouts}"
        ),
    )
    thr.start_s = seen.t_first - worker.started_at
    thr.restored = int(restored)
    thr.restore_s = metric_sum(text, "tierstream_changelog_restore_seconds_total")
    thr.cache_hit_share = hits / (hits + misses) if hits + misses else None
    return thr


def worker_state_bytes(data_dir: Path, customers: int) -> tuple[float | None, int, int]:
    """(average value bytes per key in the RocksDB table, bytes on disk, keys).

    Read after the worker stopped: every partition DB is opened read-only and every value
    counted, so the figure is the size of the live state, not of changelog history.
    """
    from rocksdict import AccessType, Rdict

    total = count = 0
    dbs = [p for p in data_dir.rglob("*.db") if p.is_dir()]
    for db in dbs:
        with contextlib.suppress(Exception):  # an empty/unopened partition DB
            d = Rdict(str(db), access_type=AccessType.read_only())
            try:
                for _k, v in d.items():
                    total += len(v if isinstance(v, bytes | bytearray) else bytes(v))
                    count += 1
            finally:
                d.close()
    on_disk = dir_bytes(data_dir) if data_dir.exists() else 0
    return (total / count if count else None), on_disk, count


def wait_ready(worker: Worker, timeout: float, expect_recovery: bool = False) -> float:
    """Seconds from now until /health says recovered with partitions assigned.

    With ``expect_recovery`` the worker must first be seen recovering: right after the
    assignment faust may not have started the recovery yet, and /health would already
    say "not recovering" (a 0 s recovery that restored nothing).
    """
    started = time.monotonic()
    seen_recovering = False

    def ready() -> bool:
        nonlocal seen_recovering
        if not worker.alive():
            raise BenchError(f"worker exited during start-up:\n{worker.tail()}")
        h = worker.health()
        if h is None or "recovering" not in h:
            return False
        if h["recovering"]:
            seen_recovering = True
            return False
        assigned = h.get("assigned_partitions", 0)
        return (
            isinstance(assigned, int) and assigned > 0 and (seen_recovering or not expect_recovery)
        )

    wait_until(ready, timeout, "worker ready", every=0.05)
    return time.monotonic() - started
