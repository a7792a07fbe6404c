"""The one-command demo, run non-interactively exactly as a user would run it.

``deploy/demo --duration 30 --summary-json FILE`` starts the worker and the simulator
against the real broker and Redis and stops everything by itself; its own topic
prefix, app id, Redis prefix, port and state directory keep it apart from a developer's
demo and from other tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from state.decisions import TIERS
from tests.integration.harness import REPO_ROOT, free_port


@pytest.fixture
def demo_env(
    kafka_bootstrap: str, redis_url: str, redis_key_prefix: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    tag = secrets.token_hex(4)
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "REDIS_URL": redis_url,
            "TIERSTREAM_TOPIC_PREFIX": f"demo{tag}-",
            "TIERSTREAM_APP_ID": f"demo{tag}-app",
            # The demo only resets prefixes that say "demo"; the fixture deletes the keys.
            "TIERSTREAM_REDIS_PREFIX": f"{redis_key_prefix}demo:",
            "TIERSTREAM_WEB_PORT": str(free_port()),
            "TIERSTREAM_PARTITIONS": "4",
            "TIERSTREAM_DEMO_DIR": str(tmp_path / "demo"),
            # the environment under test, as it is (CI's from the lock, or make
            # test-latest's): the demo must not install another one over it
            "TIERSTREAM_PYTHON": sys.executable,
        }
    )
    yield env
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"demo{tag}-")]
    if mine:
        for fut in admin.delete_topics(mine, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # already gone
                fut.result()


def test_demo_runs_by_itself_and_summarises(demo_env: dict[str, str], tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [
            str(REPO_ROOT / "deploy" / "demo"),
            "--duration",
            "30",
            "--summary-json",
            str(summary_path),
            "--customers",
            "500",
            "--rate",
            "400",
            "--bad-share",
            "0.02",
        ],
        cwd=REPO_ROOT,
        env=demo_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"demo did not stop by itself:\n{out.decode(errors='replace')[-3000:]}")
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    summary = json.loads(summary_path.read_text())

    assert summary["worker_up"], text[-3000:]
    assert summary["events"] > 0
    assert set(summary["tiers"]) <= set(TIERS) and sum(summary["tiers"].values()) > 0
    assert summary["tier_changes"] > 0
    assert summary["dead_letters"] > 0 and summary["dead_letter_reasons"]
    # The view tailed the real output topics too, not only the metrics.
    assert summary["seen_on_output_topics"].get("tier-changes", 0) > 0
    assert summary["metrics_url"] == f"http://127.0.0.1:{demo_env['TIERSTREAM_WEB_PORT']}/metrics"
    # Everything the demo started is stopped: nothing left in its process group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 0)
        pytest.fail(f"demo left processes running in group {proc.pid}")
    assert "stopped; logs in" in text
