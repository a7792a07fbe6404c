"""``tierstream replay``: produce a JSONL or CSV file into the input topics.

Reading and checking the file, and producing, are streams/tools/loader.py; this module
parses the flags, shows progress and reports what the service will reject. Exit
codes: 0 done, 1 Kafka/delivery error, 2 bad input file, 130 interrupted.
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
    print(replay_report(args.file, n, stats), file=sys.stderr)
    return EXIT_OK


def replay_report(path: str, produced: int, st: ReplayStats) -> str:
    """The end-of-replay summary: what was produced and what the service will reject."""
    lines = [
        f"tierstream replay: produced {produced} records from {path} ({st.lines} lines; "
        f"{st.malformed} malformed, {st.rejected} will be dead-lettered, "
        f"{st.raw} raw, {st.skipped} skipped)"
    ]
    if st.reasons:
        lines.append("  by reason: " + ", ".join(f"{k} x{v}" for k, v in st.reasons.most_common(8)))
    lines.extend(f"  {ex}" for ex in st.examples)
    return "\n".join(lines)
