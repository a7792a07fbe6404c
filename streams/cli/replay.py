"""``tierstream replay``: produce a JSONL or CSV file into the input topics.

Reading and checking the file, and producing, are streams/tools/loader.py; putting the
records in event-time order (the default, within ``--sort-memory-mb``: the cross-topic
order contract of docs/topics.md) is streams/tools/event_order.py; this module parses
the flags, shows progress and reports what the service will reject. Exit codes: 0
done, 1 Kafka/delivery error, 2 bad input file, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from schemas.events import INPUT_TOPICS
from streams.cli.common import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_KAFKA,
    EXIT_OK,
    ProgressBar,
    add_kafka_flags,
    positive_float,
    settings_from_args,
)
from streams.tools.event_order import DEFAULT_MEMORY_BYTES, SortStats, in_event_time_order
from streams.tools.loader import (
    ProduceError,
    ReplayFileError,
    ReplayStats,
    count_lines,
    produce_records,
    read_replay_file,
)


def add_parser(sub: Any) -> None:
    r = sub.add_parser(
        "replay",
        help="produce a JSONL or CSV file into the input topics",
        description="Produce events from a file (JSONL with a 'topic' field per line, or "
        "CSV with --topic) into the input topics, with a progress bar on stderr.",
    )
    r.add_argument("file", help="JSONL or CSV file; - reads standard input")
    r.add_argument("--topic", choices=INPUT_TOPICS, help="input topic for every line")
    r.add_argument("--format", choices=("jsonl", "csv"), help="default: by file extension")
    r.add_argument("--rate", type=positive_float, help="records per second (default: max)")
    r.add_argument(
        "--order",
        choices=("event-time", "file"),
        default="event-time",
        help="event-time (default): produce in event-time order, so that the worker "
        "applies every customer's events in order across topics even when the file is "
        "a per-customer backfill; file: as the file lists them (docs/topics.md, 'Order')",
    )
    r.add_argument(
        "--sort-memory-mb",
        type=positive_float,
        default=DEFAULT_MEMORY_BYTES / 2**20,
        help="records held in memory while sorting; beyond it, sorted runs go to "
        "temporary files and are merged (default %(default).0f)",
    )
    r.add_argument(
        "--no-validate",
        action="store_true",
        help="do not pre-check records with the decoder (faster; no dead-letter forecast)",
    )
    add_kafka_flags(r)
    r.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    stats = ReplayStats()
    try:
        total = count_lines(args.file)
    except OSError as exc:
        print(f"tierstream replay: {exc}", file=sys.stderr)
        return EXIT_INPUT
    records = read_replay_file(
        args.file, topic=args.topic, fmt=args.format, stats=stats, validate=not args.no_validate
    )
    sorting: SortStats | None = None
    if args.order == "event-time":
        sorting = SortStats()
        records = in_event_time_order(records, int(args.sort_memory_mb * 2**20), sorting)
    bar = ProgressBar(total)
    try:
        try:
            n = produce_records(settings_from_args(args), records, rate=args.rate, progress=bar)
        finally:
            bar.finish()
    except ReplayFileError as exc:
        print(f"tierstream replay: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ProduceError as exc:
        print(f"tierstream replay: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    except KeyboardInterrupt:
        print(f"tierstream replay: interrupted after {stats.records} records", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(replay_report(args.file, n, stats, sorting), file=sys.stderr)
    return EXIT_OK


def replay_report(
    path: str, produced: int, st: ReplayStats, sorting: SortStats | None = None
) -> str:
    """The end-of-replay summary: what was produced and what the service will reject."""
    lines = [
        f"tierstream replay: produced {produced} records from {path} ({st.lines} lines; "
        f"{st.malformed} malformed, {st.rejected} will be dead-lettered, "
        f"{st.raw} raw, {st.skipped} skipped)"
    ]
    if sorting is None:
        lines.append("  in file order (--order file)")
    else:
        spilled = (
            f"{sorting.runs} sorted runs spilled ({sorting.spilled_bytes / 2**20:.1f} MB)"
            if sorting.runs
            else "in memory"
        )
        lines.append(f"  in event-time order: {sorting.records} records sorted {spilled}")
    if st.reasons:
        lines.append("  by reason: " + ", ".join(f"{k} x{v}" for k, v in st.reasons.most_common(8)))
    lines.extend(f"  {ex}" for ex in st.examples)
    return "\n".join(lines)
