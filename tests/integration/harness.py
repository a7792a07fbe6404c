"""Drive real tierstream workers against the real broker and Redis.

A worker runs as a subprocess (``python -m streams.cli worker``), exactly as a user
runs it, so these tests cover the CLI, the faust app, the table and the sinks
together. Nothing here is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def produce(settings: Settings, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> int:
    """Produce (contract topic, key, value) records, partitioned like the service expects."""
    p = Producer(settings.producer_config())
    n = 0
    errors: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for topic, key, value in records:
        p.produce(settings.topic(topic), key=key, value=value, on_delivery=on_delivery)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    remaining = p.flush(30)
    assert remaining == 0 and not errors, f"produce failed: {errors[:3]} ({remaining} unflushed)"
    return n


def consume_all(settings: Settings, topic: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Every committed record of a (contract) topic, from the beginning, in partition order.

    Reads up to the end offsets taken at call time, with read_committed, and fails if
    it cannot get there within ``timeout``: a partial read would let every "nothing
    else was emitted" check pass by timing out.
    """
    full = settings.topic(topic)
    c = Consumer(
        settings.confluent_config(
            **{
                "group.id": f"reader-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
    )
    try:
        meta = c.list_topics(full, timeout=10).topics[full]
        tps = [TopicPartition(full, p, 0) for p in meta.partitions]
        ends: dict[int, int] = {}
        for tp in tps:
            _lo, hi = c.get_watermark_offsets(tp, timeout=10)
            ends[tp.partition] = hi
        c.assign(tps)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        since_check = 0
        while True:
            msg = c.poll(0.5)
            if msg is not None and not msg.error() and msg.offset() < ends[msg.partition()]:
                out.append(
                    {
                        "partition": msg.partition(),
                        "offset": msg.offset(),
                        "key": msg.key(),
                        "value": json.loads(msg.value()),
                    }
                )
            since_check += 1
            if msg is not None and since_check < 500:
                continue
            since_check = 0
            # done when every partition's position reached the end taken at the start
            # (read_committed skips aborted records and control markers, so the last
            # offset read may never equal end - 1); records written since are ignored
            pos = {tp.partition: tp.offset for tp in c.position(tps)}
            if all(pos[p] >= hi for p, hi in ends.items() if hi > 0):
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"consume_all({full}): read {len(out)} records in {timeout:.0f}s but did "
                    f"not reach the end offsets {ends} (positions {pos}); a partial read is "
                    "not a result"
                )
        return out
    finally:
        c.close()


def group_offsets(settings: Settings) -> dict[tuple[str, int], tuple[int | None, int]]:
    """(committed offset or None, end offset) of every partition of every consumed topic
    for the worker group."""
    c = Consumer(settings.confluent_config(**{"group.id": settings.app_id}))
    try:
        tps = []
        for t in settings.consumed_topics:
            meta = c.list_topics(t, timeout=10).topics[t]
            tps.extend(TopicPartition(t, p) for p in meta.partitions)
        out: dict[tuple[str, int], tuple[int | None, int]] = {}
        for tp in c.committed(tps, timeout=10):
            _lo, hi = c.get_watermark_offsets(tp, timeout=10)
            got = tp.offset if tp.offset is not None and tp.offset >= 0 else None
            out[(tp.topic, tp.partition)] = (got, hi)
        return out
    finally:
        c.close()


def group_lag(settings: Settings) -> dict[tuple[str, int], int]:
    """Records of every consumed topic the worker group has not committed yet, per
    partition (only partitions with lag). Inputs *and* ticks: a worker can have read
    every transaction and still owe the decisions of later ticks."""
    c = Consumer(settings.confluent_config(**{"group.id": settings.app_id}))
    try:
        tps = []
        for t in settings.consumed_topics:
            meta = c.list_topics(t, timeout=10).topics[t]
            tps.extend(TopicPartition(t, p) for p in meta.partitions)
        committed = {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10)}
        lag = {}
        for tp in tps:
            _lo, hi = c.get_watermark_offsets(tp, timeout=10)
            got = committed[(tp.topic, tp.partition)]
            behind = hi - (got if got is not None and got >= 0 else 0)
            if behind > 0:
                lag[(tp.topic, tp.partition)] = behind
        return lag
    finally:
        c.close()


def group_caught_up(settings: Settings) -> bool:
    """True when the worker group's committed offsets reached the end of every
    consumed topic."""
    return not group_lag(settings)


def wait_caught_up(settings: Settings, timeout: float, what: str, *workers: WorkerProcess) -> None:
    """Wait until the group committed everything; on timeout (or a worker that died)
    fail with the remaining lag and the workers' last log lines, so a CI failure says
    which partition stalled and why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise AssertionError(
                    f"{w.name} exited with {w.proc.returncode} while waiting for {what}:\n"
                    f"{w.tail()}"
                )
        if group_caught_up(settings):
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {w.name} log tail\n{w.tail(40)}" for w in workers)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}; "
        f"uncommitted {group_lag(settings)}\n{tails}"
    )


@dataclass
class WorkerProcess:
    settings: Settings
    log_dir: Path
    name: str = "worker"
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
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
                "TIERSTREAM_TICK_INTERVAL": str(s.tick_interval),
            }
        )
        if s.rules_path:
            env["TIERSTREAM_RULES"] = s.rules_path
        env.setdefault("TIERSTREAM_API_AUTH", "disabled")
        return env

    def start(self, wait: bool = True) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info", *self.extra_args],
            cwd=REPO_ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.starts += 1
        if wait:
            wait_until(self.is_ready, 90, f"{self.name} to serve /health with partitions")

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=5) as r:
                body = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            body, status = e.read(), e.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def metric_samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of every sample called ``name`` on the worker's /metrics."""
        status, text = self.get("/metrics")
        assert status == 200, text
        return [
            (sample.labels, sample.value)
            for family in text_string_to_metric_families(str(text))
            for sample in family.samples
            if sample.name == name
        ]

    def is_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            status, body = self.get("/health")
        except OSError:
            return False
        return status == 200 and isinstance(body, dict) and body["assigned_partitions"] > 0

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def send_term(self) -> None:
        """SIGTERM without waiting (``stop_together``)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-n:])


def stop_together(*workers: WorkerProcess, timeout: float = 60) -> list[int | None]:
    """Stop a group the way an operator stops a deployment: SIGTERM to every worker at
    once, then wait for each. Stopping them one after another makes the survivor
    rebalance while its own SIGTERM arrives; faust's shutdown can then hang in the
    assignment it is taking (seen once in a loaded CI run: the last worker did not
    exit within 60 s; docs/reliability.md, "Known limits")."""
    for w in workers:
        w.send_term()
    return [w.stop(timeout) for w in workers]
