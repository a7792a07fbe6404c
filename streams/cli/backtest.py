"""``tierstream backtest``: run a draft rules file against a baseline over the same input.

The work is streams/tools/backtest.py (both rule sets through the worker's pipeline)
and streams/tools/backtest_report.py (migration.csv, summary.json, report.md/.html,
changed_customers.csv); this module reads the flags, loads the rules with the worker's
loader and shows progress. No Kafka or Redis unless ``--from-topics``. Exit codes: 0
done, 1 Kafka, 2 bad rules or input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from streams.cli.common import (
    EXIT_INPUT,
    EXIT_KAFKA,
    EXIT_OK,
    ProgressBar,
    add_kafka_flags,
    positive_int,
    settings_from_args,
)


def add_parser(sub: Any) -> None:
    b = sub.add_parser(
        "backtest",
        help="what a rules change would have done: two rule sets over the same input",
        description="Decide the input (replay JSONL/CSV files, or the input topics) under "
        "the baseline rules and under --rules, and write the migration matrix, a summary, "
        "a report and the customers who move into --out.",
    )
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--input", action="append", metavar="FILE", help="replay file (JSONL or CSV), repeatable"
    )
    src.add_argument(
        "--from-topics",
        action="store_true",
        help="read the input topics (and ticks) from the beginning up to their end offsets",
    )
    b.add_argument("--rules", required=True, metavar="NEW.toml", help="the draft rules")
    b.add_argument(
        "--baseline-rules",
        metavar="OLD.toml",
        help="the rules to compare with (default: TIERSTREAM_RULES, else the packaged defaults)",
    )
    b.add_argument("--out", required=True, metavar="DIR", help="output directory")
    b.add_argument(
        "--as-of",
        metavar="TS",
        help="a final tick for everyone at this time, RFC 3339 (default: the newest event)",
    )
    b.add_argument(
        "--partitions",
        type=positive_int,
        help="partitions the files' records are spread over, as `tierstream replay` "
        "would (env TIERSTREAM_PARTITIONS)",
    )
    add_kafka_flags(b)
    b.set_defaults(func=cmd_backtest)


def cmd_backtest(args: argparse.Namespace) -> int:
    from schemas.timefmt import format_ts_utc
    from state.rules import load_rules
    from streams.rules_log import parse_ts
    from streams.settings import Settings
    from streams.tools.backtest import messages_from_files, messages_from_topics, run_backtest
    from streams.tools.backtest_report import write_outputs
    from streams.tools.loader import ReplayFileError, ReplayStats

    settings = settings_from_args(args)
    # not settings.rules_path: settings_from_args takes --rules (the draft) for it
    baseline_path = args.baseline_rules or Settings.from_env().rules_path
    try:
        new = load_rules(args.rules)
        baseline = load_rules(baseline_path)
        as_of = parse_ts(args.as_of) if args.as_of else None
    except (OSError, ValueError) as exc:
        print(f"tierstream backtest: {exc}", file=sys.stderr)
        return EXIT_INPUT
    stats = ReplayStats()
    try:
        if args.from_topics:
            from confluent_kafka import KafkaException

            try:
                messages = messages_from_topics(settings)
            except (KafkaException, RuntimeError) as exc:
                print(f"tierstream backtest: Kafka: {exc}", file=sys.stderr)
                return EXIT_KAFKA
        else:
            messages = messages_from_files(args.input, settings.partitions, stats)
    except (OSError, ReplayFileError) as exc:
        print(f"tierstream backtest: {exc}", file=sys.stderr)
        return EXIT_INPUT
    bar = ProgressBar(2 * len(messages))
    try:
        bt = run_backtest(messages, baseline, new, as_of, progress=bar)
    finally:
        bar.finish()
    meta = {
        "input": {
            "files": list(args.input or []),
            "from_topics": bool(args.from_topics),
            "partitions": settings.partitions if not args.from_topics else None,
            "skipped_lines": stats.skipped,
        },
        "rules": {"new": args.rules, "baseline": baseline_path or "packaged defaults"},
    }
    out = Path(args.out)
    write_outputs(bt, out, meta)
    s = bt.summary()
    print(
        f"tierstream backtest: {bt.events:,} records as of "
        f"{format_ts_utc(bt.as_of) if bt.as_of is not None else '-'} under {baseline.version} "
        f"and {new.version} in {bt.seconds:.1f} s ({s['events_per_second']:,} records/s): "
        f"{s['migration']['stayed']:,} customers keep their tier, {s['migration']['up']:,} "
        f"move up, {s['migration']['down']:,} down; {out}/report.md",
        file=sys.stderr,
    )
    return EXIT_OK
