"""``tierstream simulate``: produce a synthetic bank's input events, or print them.

The bank is streams/tools/simulator.py (deterministic with ``--seed``); producing and
the ``--dry-run`` JSONL lines (replayable with ``tierstream replay``) are in
streams/tools/loader.py. Exit codes: 0 done, 1 Kafka/delivery error, 2 bad
arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from streams.cli.common import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_KAFKA,
    EXIT_OK,
    ProgressBar,
    add_kafka_flags,
    positive_float,
    positive_int,
    settings_from_args,
    share,
)
from streams.tools.loader import ProduceError, produce_records, write_jsonl
from streams.tools.simulator import LABEL_OK, SimConfig, Simulator


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "simulate",
        help="produce a realistic synthetic bank's events (deterministic with --seed)",
        description="Produce a synthetic bank's input events to Kafka, or print them as "
        "JSONL with --dry-run (replayable with `tierstream replay`).",
    )
    s.add_argument("--customers", type=positive_int, default=5000, help="default 5000")
    amount = s.add_mutually_exclusive_group()
    amount.add_argument("--events", type=positive_int, help="stop after N records")
    amount.add_argument("--duration", type=positive_float, help="stop after S wall seconds")
    s.add_argument("--rate", type=positive_float, help="records per second (default: max)")
    s.add_argument("--seed", type=int, default=42, help="default 42")
    s.add_argument("--bad-share", type=share, default=0.0, help="share of malformed records")
    s.add_argument(
        "--drift-share", type=share, default=0.05, help="share of customers drifting tiers"
    )
    s.add_argument(
        "--events-per-day",
        type=positive_int,
        help="customer transactions per simulated day (default 4 per customer)",
    )
    add_kafka_flags(s)
    s.add_argument(
        "--dry-run", action="store_true", help="print JSONL to stdout instead of producing"
    )
    s.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    try:
        cfg = SimConfig(
            customers=args.customers,
            seed=args.seed,
            bad_share=args.bad_share,
            drift_share=args.drift_share,
            events_per_day=args.events_per_day,
        )
    except ValueError as exc:
        print(f"tierstream simulate: {exc}", file=sys.stderr)
        return EXIT_INPUT
    sim = Simulator(cfg)
    started = time.monotonic()
    try:
        if args.dry_run:
            n = write_jsonl(
                sim.labelled(),
                sys.stdout.buffer,
                limit=args.events,
                rate=args.rate,
                duration=args.duration,
            )
        else:
            bar = ProgressBar(args.events)
            try:
                n = produce_records(
                    settings_from_args(args),
                    sim.records(),
                    rate=args.rate,
                    limit=args.events,
                    progress=bar,
                    duration=args.duration,
                )
            finally:
                bar.finish()
    except ProduceError as exc:
        print(f"tierstream simulate: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    except KeyboardInterrupt:
        print(f"tierstream simulate: interrupted; labels so far {_labels(sim)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `--dry-run | head`: the reader has enough
        return EXIT_OK
    took = time.monotonic() - started
    verb = "wrote" if args.dry_run else "produced"
    print(
        f"tierstream simulate: {verb} {n} records in {took:.1f}s "
        f"(seed {cfg.seed}, {cfg.customers} customers; {_labels(sim)})",
        file=sys.stderr,
    )
    return EXIT_OK


def _labels(sim: Simulator) -> str:
    ok = sim.stats.get(LABEL_OK, 0)
    rest = ", ".join(f"{k} {v}" for k, v in sorted(sim.stats.items()) if k != LABEL_OK)
    return f"ok {ok}" + (f", {rest}" if rest else "")
