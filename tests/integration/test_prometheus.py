"""A real Prometheus (Debian's package, via deploy/local/prometheus) scrapes a running
worker, and the worker's counters come back through Prometheus's HTTP API.

This is the path operations depends on: the exposition format, the label sets and the
scrape config all have to agree, which no unit test of the registry can show.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from streams.tools.simulator import SimConfig, Simulator
from tests.integration.harness import REPO_ROOT, WorkerProcess, free_port, produce, wait_until

SCRIPT = REPO_ROOT / "deploy" / "local" / "prometheus"


class LocalPrometheus:
    def __init__(self, port: int, run_dir: Path, target: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "PROMETHEUS_PORT": str(port),
            "PROMETHEUS_TARGETS": target,
            "PROMETHEUS_SCRAPE_INTERVAL": "1s",
            "TIERSTREAM_RUN_DIR": str(run_dir),
        }

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,  # a fresh machine installs the package first
            check=False,
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def worker(make_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    w = make_worker()
    w.start()
    return w


@pytest.fixture
def prometheus(worker: WorkerProcess, tmp_path: Path) -> Iterator[LocalPrometheus]:
    prom = LocalPrometheus(free_port(), tmp_path / "run", f"127.0.0.1:{worker.settings.web_port}")
    started = prom.run("start")
    assert started.returncode == 0, started.stdout + started.stderr
    yield prom
    stopped = prom.run("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert prom.run("status").returncode != 0, "prometheus still running after stop"


def test_prometheus_scrapes_the_worker(
    worker: WorkerProcess, prometheus: LocalPrometheus, service_settings: Settings
) -> None:
    records = list(Simulator(SimConfig(customers=50, seed=3, bad_share=0.05)).records(limit=600))
    produce(service_settings, ((r.topic, r.key, r.value) for r in records))

    wait_until(lambda: prometheus.scalar('up{job="tierstream"}') == 1.0, 60, "Prometheus to scrape")
    # Every input record is counted once (applied, duplicate, late or dead_letter).
    wait_until(
        lambda: prometheus.scalar("sum(tierstream_events_consumed_total)") == len(records),
        90,
        f"Prometheus to see all {len(records)} events",
    )
    by_result = {
        s["metric"]["result"]: float(s["value"][1])
        for s in prometheus.query("sum by (result) (tierstream_events_consumed_total)")
    }
    assert by_result.get("applied", 0) > 0 and by_result.get("dead_letter", 0) > 0, by_result
    # The labels survive the scrape: tiers as the worker exported them.
    wait_until(
        lambda: bool(prometheus.query("tierstream_customers")), 30, "tier gauges in Prometheus"
    )
    tiers = {s["metric"]["tier"] for s in prometheus.query("tierstream_customers")}
    assert tiers <= {"mass", "affluent", "hnw", "private"} and tiers
    # And the project's alerting rules were loaded into that server.
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as r:
        groups = json.loads(r.read())["data"]["groups"]
    names = {rule["name"] for g in groups for rule in g["rules"]}
    assert "TierstreamWorkerDown" in names
