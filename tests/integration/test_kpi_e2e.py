"""Issue 23 on the real broker: the KPI job reads the real topics, and the whole loop
-- the worker's offers, the simulator's answers, the worker's attribution and the KPI
job's -- agrees with itself.

1. The hand-computed month of tests/streams/tools/test_kpi.py, produced to the real
   topics (with malformed records among them), read back by ``tierstream kpi``: the
   same CSVs, byte for byte.
2. A worker fed by ``tierstream simulate --demo`` (which answers the worker's offers,
   read back from the offers topic), then ``tierstream kpi``: every answer names a
   real offer of its customer, the worker attributed every one of them (none
   unmatched), and the worker's counters by kind, tier and outcome equal the KPI job's
   conversion over a period that holds every offer -- two separate implementations of
   the same attribution. A shorter period counts the answers that came after it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import orjson
from confluent_kafka.admin import AdminClient, ConfigResource

from schemas.events import OfferResponse
from schemas.timefmt import format_ts_utc
from streams.cli import main
from streams.settings import Settings
from streams.tools.kpi import Period
from tests.integration.harness import (
    REPO_ROOT,
    WorkerProcess,
    consume_all,
    produce,
    wait_caught_up,
    wait_until,
)
from tests.streams.tools.test_kpi import (
    EXPECTED_CONVERSION,
    EXPECTED_MIGRATION,
    EXPECTED_RETENTION,
    RULES,
    march_records,
)

SIM_SECONDS = 15
SIM_CUSTOMERS = 100
SIM_SPEED = 360  # simulated days a minute: ~90 days in the run


def _record(topic: str, doc: dict[str, object]) -> tuple[str, bytes, bytes]:
    doc = {k: v for k, v in doc.items() if k != "ts_ms"}
    return (topic, str(doc["customer_id"]).encode(), orjson.dumps(doc))


def _kpi(settings: Settings, out: Path, first: str, last: str) -> int:
    return main(
        [
            "kpi",
            "--from",
            first,
            "--to",
            last,
            "--out",
            str(out),
            "--bootstrap",
            settings.kafka_bootstrap,
            "--topic-prefix",
            settings.topic_prefix,
        ]
    )


def test_kpi_reads_the_real_topics_and_writes_the_hand_computed_files(
    service_settings: Settings, tmp_path: Path
) -> None:
    records: list[tuple[str, bytes, bytes]] = []
    for what, item in march_records():
        if what == "tier-change":
            records.append(_record("tier-changes", item[0]))
        elif what == "offer":
            records.append(_record("offers", item))
        else:
            ev: OfferResponse = item
            doc = {
                "event_id": ev.event_id,
                "customer_id": ev.customer_id,
                "ts": format_ts_utc(ev.ts),
                "offer_event_id": ev.offer_event_id,
                "outcome": ev.outcome,
            }
            records.append(("offer-responses", ev.customer_id.encode(), orjson.dumps(doc)))
    # malformed records of every topic: counted and left out
    topic, _key, value = records[0]
    records += [
        (topic, b"someone-else", value),
        ("offers", b"A", b'{"event_id": "x"}'),
        ("offer-responses", b"A", b"not json"),
    ]
    produce(service_settings, records)
    # topics create kept the responses for the KPIs (400 days), not the broker's 7
    admin = AdminClient({"bootstrap.servers": service_settings.kafka_bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, service_settings.topic("offer-responses"))
    configs = admin.describe_configs([res])[res].result(timeout=30)
    assert configs["retention.ms"].value == str(400 * 86_400_000)
    out = tmp_path / "kpi"
    assert _kpi(service_settings, out, "2026-03-01", "2026-03-31") == 0
    assert (out / "migration.csv").read_text() == EXPECTED_MIGRATION
    assert (out / "conversion.csv").read_text() == EXPECTED_CONVERSION
    assert (out / "retention.csv").read_text() == EXPECTED_RETENTION
    md = (out / "report.md").read_text()
    assert "| tier-changes | key | 1 |" in md
    assert "| offers | $.customer_id | 1 |" in md
    assert "| offer-responses | $ | 1 |" in md
    assert f"`{service_settings.topic('offers')}` (9 offsets)" in md


def _simulate(settings: Settings, log: Path) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "TIERSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        }
    )
    with log.open("wb") as fh:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "simulate",
                "--demo",
                "--customers",
                str(SIM_CUSTOMERS),
                "--speed",
                str(SIM_SPEED),
                "--duration",
                str(SIM_SECONDS),
                "--bad-share",
                "0",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=fh,
            timeout=SIM_SECONDS + 60,
            check=False,
        )


def _table_value(md: str, label: str) -> int:
    m = re.search(rf"^\| {re.escape(label)} \| ([\d,]+) \|$", md, flags=re.M)
    assert m is not None, label
    return int(m.group(1).replace(",", ""))


def test_worker_simulator_answers_and_kpi_agree(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = make_worker()
    worker.start()
    sim_log = tmp_path / "simulate.log"
    done = _simulate(service_settings, sim_log)
    assert done.returncode == 0, sim_log.read_text()[-2000:]
    assert "offers answered" in sim_log.read_text()
    wait_caught_up(service_settings, 90, "the worker to process the bank", worker)

    offers = {r["value"]["event_id"]: r["value"] for r in consume_all(service_settings, "offers")}
    answers = [r["value"] for r in consume_all(service_settings, "offer-responses")]
    assert offers and answers, sim_log.read_text()[-2000:]
    outcomes = Counter(a["outcome"] for a in answers)
    assert outcomes["accepted"] and outcomes["declined"], outcomes
    for a in answers:  # every answer names a real offer of its own customer, after it
        o = offers[a["offer_event_id"]]
        assert o["customer_id"] == a["customer_id"]

    # The worker attributed every answer (it remembers its customers' latest offers).
    def counted() -> dict[tuple[str, str, str], int]:
        return {
            (s["kind"], s["tier"], s["outcome"]): int(v)
            for s, v in worker.metric_samples("tierstream_offer_responses_total")
        }

    wait_until(lambda: sum(counted().values()) == len(answers), 30, "every answer counted")
    unmatched = [
        v
        for s, v in worker.metric_samples("tierstream_events_consumed_total")
        if s["topic"] == "offer-responses" and s["result"] == "unmatched"
    ]
    assert sum(unmatched) == 0

    # The KPI job over a period holding every offer: its conversion equals the worker's
    # counters (one answer per offer here), kind by kind and tier by tier.
    everything = tmp_path / "all"
    assert _kpi(service_settings, everything, "2025-01-01", "2026-12-31") == 0
    rows = [ln.split(",") for ln in (everything / "conversion.csv").read_text().splitlines()[1:]]
    from_kpi = {
        (kind, tier, outcome): int(n)
        for kind, tier, _offers, *counts, _conv in rows
        for outcome, n in zip(("accepted", "declined", "ignored"), counts, strict=True)
        if int(n)
    }
    assert from_kpi == counted()
    assert sum(int(r[2]) for r in rows) == len(offers)
    migration = (everything / "migration.csv").read_text().splitlines()[1:]
    tiered = {r["value"]["customer_id"] for r in consume_all(service_settings, "tier-changes")}
    assert sum(int(ln.split(",")[2]) for ln in migration) == len(tiered)

    # A first fortnight: the answers to its offers that came after it are counted too.
    period = Period.of(date(2026, 1, 1), date(2026, 1, 14), RULES)
    fortnight = tmp_path / "fortnight"
    assert _kpi(service_settings, fortnight, "2026-01-01", "2026-01-14") == 0
    in_period = {
        eid for eid, o in offers.items() if period.start_ms <= _ms(o["ts"]) < period.end_ms
    }
    late = sum(
        1 for a in answers if a["offer_event_id"] in in_period and _ms(a["ts"]) >= period.end_ms
    )
    md = (fortnight / "report.md").read_text()
    assert _table_value(md, "responses to offers of the period") == sum(
        1 for a in answers if a["offer_event_id"] in in_period
    )
    assert _table_value(md, "of which stamped after the period") == late > 0


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)
