"""The one-command demo, run non-interactively exactly as a user would run it.

``deploy/demo --duration N --summary-json FILE`` with the demo's defaults (its bank,
pace and rules) starts the worker and the simulator against the real broker and Redis
and stops everything by itself; its own topic prefix, app id, Redis prefix, port and
state directory keep it apart from a developer's demo and from other tests.

What a newcomer must see in that time: every kind of decision the core declares
(tests/demo_kinds.py: tier directions, offer kinds with the demo's campaign, alert
kinds, time-triggers), read back from the real output topics and in the view's
summary; most profiles with RFM, P(alive) and CLV; and a management report at the end
whose every section has rows.

Why DEMO_DURATION is 30 s: through the core alone the last kinds appear on simulated
days 32-34 (the campaign and the first churn alert; test_demo_bank.py prints the
days). A default demo covers ~120 simulated days a minute after ~3 s of start-up:
measured here, 30 s runs reached day 60 and 25 s runs day 46-51 with two extra busy
processes on the 2 cores; with four, a 25 s run started late (first decision after
10 s) and still reached day 40. 30 s keeps ~15 simulated days of margin in that case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from confluent_kafka.admin import AdminClient

from state.decisions import TIERS
from state.rules import load_rules
from streams.settings import Settings
from streams.tools.report import LoadedProfiles, build_report, load_profiles
from streams.tools.report_render import CHARTS
from tests.demo_kinds import every_kind, kinds_of, missing
from tests.integration.harness import REPO_ROOT, consume_all, free_port

DEMO_DURATION = 30
DEMO_RULES = REPO_ROOT / "deploy" / "demo-rules.toml"


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
    env.pop("TIERSTREAM_RULES", None)  # the demo's own rules, as a newcomer gets them
    yield env
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"demo{tag}-")]
    if mine:
        for fut in admin.delete_topics(mine, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # already gone
                fut.result()


def _run_demo(env: dict[str, str], *args: str) -> str:
    proc = subprocess.Popen(
        [str(REPO_ROOT / "deploy" / "demo"), *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=DEMO_DURATION + 150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"demo did not stop by itself:\n{out.decode(errors='replace')[-3000:]}")
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    # Everything the demo started is stopped: nothing left in its process group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 0)
        pytest.fail(f"demo left processes running in group {proc.pid}")
    return text


def test_demo_shows_every_kind_of_decision_and_ends_with_the_report(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    text = _run_demo(
        demo_env, "--duration", str(DEMO_DURATION), "--summary-json", str(summary_path)
    )
    summary = json.loads(summary_path.read_text())
    rules = load_rules(str(DEMO_RULES))
    expected = every_kind(rules)
    settings = Settings.from_env(demo_env)
    sim = summary["simulated"]
    context = f"simulated {sim}, events {summary['events']}\n{text[-2500:]}"

    # The run itself: the worker came up, kept up and covered simulated months.
    assert summary["worker_up"], context
    assert set(summary["tiers"]) <= set(TIERS) and sum(summary["tiers"].values()) > 0
    assert summary["dead_letters"] > 0 and summary["dead_letter_reasons"]
    assert summary["metrics_url"] == f"http://127.0.0.1:{demo_env['TIERSTREAM_WEB_PORT']}/metrics"
    assert "stopped; logs in" in text

    # Every kind of decision, on the real output topics ...
    records = [
        (topic, r["value"])
        for topic in ("tier-changes", "offers", "alerts")
        for r in consume_all(settings, topic)
    ]
    assert not missing(expected, kinds_of(records)), context
    # ... and in what the view showed (it tails the same topics from the start).
    shown = summary["decisions"]
    assert not missing(expected, {g: set(shown[g]) for g in expected}), context
    assert sim["days"] is not None and sim["days"] >= 30, context

    # The simulator's customers answered offers, and the view showed the outcomes.
    outcomes = summary["offer_outcomes"]
    answered = {o for per in outcomes["answers"].values() for o in per}
    assert {"accepted", "declined"} <= answered, outcomes
    assert sum(outcomes["conversion"].values()) > 0, outcomes
    assert consume_all(settings, "offer-responses"), "no answers on offer-responses"

    # Most profiles have the value figures (the view read them as the report does).
    value = summary["customer_value"]
    assert value["profiles"] >= 900, value
    for name in ("with_rfm", "with_p_alive", "with_clv"):
        assert value[name] >= 0.9 * value["profiles"], (name, value)
    assert value["churn_risk_customers"] > 0, value

    # The demo ended with the management report, every section filled.
    report_dir = Path(demo_env["TIERSTREAM_DEMO_DIR"]) / "report"
    assert f"management report: {report_dir}/report.html" in text
    for name in (*CHARTS, "report.md", "report.html"):
        assert (report_dir / name).stat().st_size > 0, name
    sections = re.split(r"^## ", (report_dir / "report.md").read_text(), flags=re.M)[1:]
    assert len(sections) >= 4
    for section in sections:
        title, _, body = section.partition("\n")
        rows = [ln for ln in body.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
        assert rows and any(set(r.replace("|", "").split()) != {"—"} for r in rows), title
    report = build_report(_profiles(settings))
    assert sum(map(sum, report.rfm_grid)) > 0.9 * report.customers
    assert all(c.with_clv > 0 for c in report.clv_by_tier), report.clv_by_tier
    assert sum(report.segment_counts.values()) > 0.9 * report.customers
    line = Decimal(str(rules.churn_p_alive))
    assert any(r.p_alive is not None and r.p_alive < line for r in report.churn_risk)


def _profiles(settings: Settings) -> LoadedProfiles:
    async def load() -> LoadedProfiles:
        client = aioredis.from_url(settings.redis_url)
        try:
            return await load_profiles(client, settings.redis_key_prefix)
        finally:
            await client.aclose()

    return asyncio.run(load())
