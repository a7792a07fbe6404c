"""Running the three systems on a bank with history: restore its states, then time them.

Each run gets the bank's states its own way (bench/restore.py), with its own consumer
group, app id, state directory and Redis prefix, and is timed from the first live event
it counted to the last (bench/common.py ``measure_progress``): the restore is reported
apart, never in the throughput. ``Runner`` holds what every run of one benchmark shares
(run id, work and log directories, timeout) and the processes it started, so that the
orchestrator can stop them all whatever happens.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.bank import BankFiles
from bench.baseline import read_status
from bench.common import (
    CLK_TCK,
    REPO_ROOT,
    BenchError,
    Throughput,
    cpu_seconds,
    machine_jiffies,
    measure_progress,
    peak_rss_bytes,
    pids_cpu,
    service_pids,
    stop_process,
    wait_until,
)
from bench.data import load_into_kafka
from bench.restore import produce_states
from bench.worker_bench import Worker, run_throughput, wait_ready
from streams.pipeline.state_cache import DEFAULT_CAPACITY
from streams.settings import Settings
from streams.topics import changelog_topic, create_topics

#: The module each framework-free or peer system runs as.
PLAIN = {"baseline": "bench.baseline", "peer": "bench.quix_peer"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(module: str, extra: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", module, *extra],
        cwd=REPO_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def tail(log: Path, n: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def status_consumed(status: Path) -> int:
    """Events a baseline or peer process has counted, from its status file."""
    n = read_status(status).get("consumed", 0)
    return int(n) if isinstance(n, int | float) else 0


@dataclass
class Runner:
    args: argparse.Namespace
    rid: str
    work: Path
    logs: Path
    timeout: float
    workers: list[Worker] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: bank states file -> the topic of states the baselines restore from
    _state_topics: dict[Path, str] = field(default_factory=dict)
    #: ``--worker-ref``: the extracted tree of that ref, and its label
    ref_root: Path | None = None
    ref_label: str = ""

    # -- settings ---------------------------------------------------------------------

    def topics(self, tag: str) -> Settings:
        """Settings naming this run's input/output topics for ``tag`` (a round, a
        history length, ...), with a worker app id, data dir and Redis prefix of the
        same tag."""
        a = self.args
        return Settings(
            kafka_bootstrap=a.bootstrap,
            redis_url=a.redis_url,
            redis_key_prefix=f"{self.rid}:w{tag}:",
            topic_prefix=f"{self.rid}-{tag}.",
            partitions=a.partitions,
            store="rocksdb://",
            app_id=f"{self.rid}-w{tag}",
            web_port=free_port(),
            data_dir=str(self.work / f"worker-{tag}"),
            dev_single_replica=True,  # the benchmark runs on one local broker
        )

    def load(self, s: Settings, bank: BankFiles, events: int) -> float:
        """Create ``s``' topics and load the first ``events`` live records."""
        create_topics(s)
        _n, seconds = load_into_kafka(s, bank.records, events)
        return seconds

    # -- the worker -------------------------------------------------------------------

    def start_worker(
        self, s: Settings, bank: BankFiles | None, log: str, root: Path = REPO_ROOT
    ) -> Worker:
        """A worker whose changelog holds ``bank``'s states (restored on start)."""
        create_topics(s)  # the app id's changelog among them
        if bank is not None:
            produce_states(s, changelog_topic(s), bank.states, s.partitions)
        cache = self.cache(bank)
        w = Worker(s, self.logs / log, args=("--state-cache", str(cache)), root=root)
        self.workers.append(w)
        return w

    def worker(
        self, s: Settings, bank: BankFiles, events: int, log: str, root: Path = REPO_ROOT
    ) -> tuple[Throughput, Worker]:
        """Restore ``bank`` into a fresh worker and time it through ``events``; the
        worker is left running (for a latency phase); the caller stops it. ``root``:
        the source tree it runs (``--worker-ref``)."""
        w = self.start_worker(s, bank, log, root)
        thr = run_throughput(w, events, self.timeout)
        return thr, w

    # -- baseline and peer ------------------------------------------------------------

    def state_topic(self, bank: BankFiles) -> str:
        """The compacted topic of ``bank``'s states the baselines read (produced once
        per run and bank; read-only afterwards)."""
        topic = self._state_topics.get(bank.states)
        if topic is None:
            from confluent_kafka.admin import AdminClient, NewTopic

            topic = f"{self.rid}.bank-states-d{bank.days}-{len(self._state_topics)}"
            admin = AdminClient({"bootstrap.servers": self.args.bootstrap})
            fut = admin.create_topics(
                [
                    NewTopic(
                        topic,
                        num_partitions=self.args.partitions,
                        replication_factor=1,
                        config={"cleanup.policy": "compact"},
                    )
                ]
            )[topic]
            fut.result(30)
            s = Settings(kafka_bootstrap=self.args.bootstrap)
            produce_states(s, topic, bank.states, self.args.partitions)
            self._state_topics[bank.states] = topic
        return topic

    def plain_argv(self, name: str, s: Settings, tag: str, bank: BankFiles) -> list[str]:
        """Arguments of a baseline or peer run over ``s``' input, with a consumer
        group, Redis prefix and Quix state directory of its own (``tag``)."""
        a = self.args
        group, short = ("baseline", "b") if name == "baseline" else ("quix", "q")
        argv = [
            "--bootstrap", a.bootstrap, "--topic-prefix", s.topic_prefix,
            "--group", f"{self.rid}-{group}-{tag}",
            "--redis-url", a.redis_url, "--redis-prefix", f"{self.rid}:{short}{tag}:",
        ]  # fmt: skip
        if name == "baseline":
            argv += ["--restore-topic", self.state_topic(bank)]
            argv += ["--state-cache", str(self.cache(bank))]
        else:
            argv += ["--state-dir", str(self.quix_dir(tag))]
        return argv

    def quix_dir(self, tag: str) -> Path:
        return self.work / f"quix-{tag}"

    def plain(
        self, name: str, s: Settings, tag: str, bank: BankFiles, events: int
    ) -> tuple[Throughput, subprocess.Popen[bytes], Path]:
        """Restore ``bank`` into a baseline or peer and time it through ``events``; the
        process is left running; returns it and its status file."""
        argv = self.plain_argv(name, s, tag, bank)
        status = self.work / f"{name}-{tag}.json"
        log = self.logs / f"{name}-{tag}.log"
        seeded: dict[str, object] = {}
        if name == "peer":
            seed = self.work / f"{name}-{tag}-seed.json"
            proc = spawn(
                PLAIN[name],
                [*argv, "--status", str(seed), "--seed-states", str(bank.states),
                 "--partitions", str(s.partitions)],
                log,
            )  # fmt: skip
            if proc.wait(self.timeout) != 0:
                raise BenchError(f"{name}: seeding its changelog failed\n{tail(log)}")
            seeded = read_status(seed)
        started = time.monotonic()
        proc = spawn(PLAIN[name], [*argv, "--status", str(status)], log)
        self.procs.append(proc)
        try:
            seen = measure_progress(
                proc.pid,
                lambda: proc.poll() is None,
                lambda: status_consumed(status),
                events,
                self.timeout,
            )
        except BenchError as exc:
            stop_process(proc)
            raise BenchError(f"{name}: {exc}\n{tail(log)}") from exc
        label = "baseline" if name == "baseline" else "quix"
        thr = seen.throughput(label, events, peak_rss_bytes(proc.pid))
        thr.start_s = seen.t_first - started
        st = read_status(status)
        if name == "baseline":
            thr.restored = _int(st.get("restored"))
            thr.restore_s = _float(st.get("restore_s"))
            hits, misses = _int(st.get("cache_hits")) or 0, _int(st.get("cache_misses")) or 0
            thr.cache_hit_share = hits / (hits + misses) if hits + misses else None
        else:
            thr.restored = _int(seeded.get("seeded"))
            thr.restore_s = None  # inside Quix's start (start_s), not reported apart
        return thr, proc, status

    # -- several workers --------------------------------------------------------------

    def scale(
        self, n: int, tag: str, bank: BankFiles, events: int
    ) -> tuple[Throughput, list[float], MachineUse]:
        """``n`` worker processes in one group over the same data: all started (states
        restored, partitions shared out) before the input is loaded, then timed from
        the first event any of them counted to the last; CPU is summed over them."""
        s = self.topics(tag)
        create_topics(s)
        produce_states(s, changelog_topic(s), bank.states, s.partitions)
        ws = []
        for i in range(n):
            si = s.with_overrides(web_port=free_port(), data_dir=str(self.work / f"w{tag}-{i}"))
            w = Worker(
                si,
                self.logs / f"scale-{tag}-{i}.log",
                args=("--state-cache", str(self.cache(bank))),
            )
            self.workers.append(w)
            ws.append(w)
        for w in ws:
            w.start()
        try:
            for w in ws:
                wait_ready(w, self.timeout, expect_recovery=False)
            # ready means assigned; wait until they share every input partition and
            # none recovers
            expected = len(s.input_topics) * s.partitions
            wait_until(
                lambda: self._settled(ws, expected), self.timeout, "workers settled", every=0.5
            )
            cpu0 = [cpu_seconds(w.pid) for w in ws]
            services = service_pids()
            svc0 = {k: pids_cpu(v) for k, v in services.items()}
            busy0, total0 = machine_jiffies()
            loader = threading.Thread(target=load_into_kafka, args=(s, bank.records, events))
            loader.start()
            try:
                seen = measure_progress(
                    ws[0].pid,
                    lambda: all(w.alive() for w in ws),
                    lambda: sum(w.consumed() for w in ws),
                    events,
                    self.timeout,
                )
            finally:
                loader.join()
            cpu1 = [cpu_seconds(w.pid) for w in ws]
            busy1, total1 = machine_jiffies()
            svc1 = {k: pids_cpu(v) for k, v in services.items()}
            thr = seen.throughput(f"{n} worker(s)", events, max(peak_rss_bytes(w.pid) for w in ws))
            # measure_progress timed the first worker's CPU only: use the sum
            thr.cpu_s = sum(cpu1) - sum(cpu0)
            usage = MachineUse(
                seconds=(total1 - total0) / CLK_TCK / (os.cpu_count() or 1),
                busy_share=(busy1 - busy0) / max(total1 - total0, 1),
                workers_s=thr.cpu_s,
                kafka_s=svc1["kafka"] - svc0["kafka"],
                redis_s=svc1["redis"] - svc0["redis"],
                cpus=os.cpu_count() or 1,
            )
            return thr, [b - a for a, b in zip(cpu0, cpu1, strict=True)], usage
        finally:
            for w in ws:
                w.stop()

    def cache(self, bank: BankFiles | None) -> int:
        """The state cache of the worker and the baseline on ``bank``: ``--state-cache``,
        else the worker's default, but never as many as the bank's customers (a real
        bank's customers outnumber any worker's cache)."""
        if self.args.state_cache is not None:
            return int(self.args.state_cache)
        customers = bank.customers if bank is not None else DEFAULT_CAPACITY * 2
        return min(DEFAULT_CAPACITY, customers // 2)

    @staticmethod
    def _settled(ws: list[Worker], expected: int) -> bool:
        total = 0
        for w in ws:
            h = w.health()
            if not h or h.get("recovering") or not h.get("assigned_partitions"):
                return False
            assigned = h.get("assigned_partitions")
            total += assigned if isinstance(assigned, int) else 0
        return total == expected

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()
        for p in self.procs:
            stop_process(p)


@dataclass
class MachineUse:
    """What the whole machine did while several workers ran: how busy its CPUs were
    and who used them (seconds of CPU over the run)."""

    seconds: float  # wall seconds of the interval
    busy_share: float  # of all CPUs
    workers_s: float
    kafka_s: float
    redis_s: float
    cpus: int

    @property
    def other_s(self) -> float:
        busy = self.busy_share * self.seconds * self.cpus
        return max(0.0, busy - self.workers_s - self.kafka_s - self.redis_s)


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, int | float) else None


def _float(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) else None
