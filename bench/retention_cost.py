"""What keeping the KPI history costs in disk, from a real run's record sizes.

``topics create`` keeps ``tier-changes``, ``offers``, ``offer-responses`` and
``alerts`` 400 days (issue 23) so a year-on-year KPI is possible. This reads those
topics of a deployment that ran a simulated bank (the demo, under its own prefix:
docs/operations.md, "KPIs") and measures, per topic: the records, their key + value
bytes, and the bytes their log segments take on the local broker (the ``.log`` files
under ``--data-dir``: batch headers included, indexes not). From the bank's size and the
simulated time the records span it projects the disk a million customers need for
``--days`` days, per replica.

    python -m bench.retention_cost --topic-prefix demo-kpi- --customers 1000 \\
        --sim-days 123.4 [--data-dir ~/.cache/tierstream/run/kafka-9092/data] [--days 400]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from streams.settings import Settings

TOPICS = ("tier-changes", "offers", "offer-responses", "alerts")
DAY_MS = 86_400_000


def _read(settings: Settings, topic: str) -> tuple[int, int, list[int]]:
    """(records, key + value bytes, event times in ms) of a whole topic."""
    import orjson

    full = settings.topic(topic)
    c = Consumer(
        settings.confluent_config(
            **{"group.id": f"retention-cost-{time.monotonic_ns()}", "enable.auto.commit": False}
        )
    )
    try:
        parts = c.list_topics(full, timeout=10).topics[full].partitions
        ends = {}
        tps = []
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(full, p), timeout=10)
            if high > low:
                ends[p] = high
                tps.append(TopicPartition(full, p, low))
        c.assign(tps)
        n = size = 0
        times: list[int] = []
        while ends:
            for m in c.consume(5000, timeout=1.0):
                if m.error():
                    continue
                n += 1
                size += len(m.key() or b"") + len(m.value() or b"")
                ts = orjson.loads(m.value() or b"{}").get("ts")
                if isinstance(ts, str):
                    times.append(int(datetime.fromisoformat(ts).timestamp() * 1000))
                if (m.offset() or 0) + 1 >= ends.get(m.partition() or 0, 0):
                    ends.pop(m.partition() or 0, None)
        return n, size, times
    finally:
        c.close()


def _disk(data_dir: Path, full: str) -> int:
    return sum(
        f.stat().st_size for d in data_dir.glob(f"{full}-*") if d.is_dir() for f in d.glob("*.log")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topic-prefix", required=True)
    ap.add_argument("--customers", type=int, required=True, help="customers of the bank run")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path.home() / ".cache/tierstream/run/kafka-9092/data",
        help="the broker's log.dirs (deploy/local/kafka's default)",
    )
    ap.add_argument("--days", type=int, default=400, help="retention to project (days)")
    ap.add_argument(
        "--sim-days",
        type=float,
        help="simulated days the bank ran (the demo's summary says; default: the span of "
        "the records' times, which back-dated onboarding stretches)",
    )
    args = ap.parse_args()
    settings = Settings(kafka_bootstrap=args.bootstrap, topic_prefix=args.topic_prefix)
    rows = []
    all_times: list[int] = []
    for topic in TOPICS:
        n, payload, times = _read(settings, topic)
        rows.append((topic, n, payload, _disk(args.data_dir, settings.topic(topic))))
        all_times += times
    span_days = args.sim_days or ((max(all_times) - min(all_times)) / DAY_MS if all_times else 0.0)
    print(
        f"{args.customers:,} customers over {span_days:.1f} simulated days; "
        f"projected to 1,000,000 customers and {args.days} days (one replica)"
    )
    print(
        "| topic | records | per customer per year | key+value B/record | on disk B/record "
        f"| GB per 1M customers, {args.days} days |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    total = 0.0
    for topic, n, payload, disk in rows:
        per_year = n / args.customers / span_days * 365 if span_days else 0.0
        per_record = disk / n if n else 0.0
        gb = per_year / 365 * args.days * 1_000_000 * per_record / 1e9
        total += gb
        print(
            f"| `{topic}` | {n:,} | {per_year:,.1f} | {payload / max(n, 1):,.0f} "
            f"| {per_record:,.0f} | {gb:,.1f} |"
        )
    print(f"| all four | | | | | {total:,.1f} |")


if __name__ == "__main__":
    main()
