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
from dataclasses import replace
from typing import Any

from schemas.events import TOPIC_TICKS
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
from streams.settings import Settings
from streams.tools.loader import (
    ProduceError,
    SimPace,
    produce_records,
    topic_partitions,
    write_jsonl,
)
from streams.tools.offer_feed import OfferFeed, OfferFeedError, answering
from streams.tools.sim_answers import parse_accept_rate
from streams.tools.simulator import LABEL_OK, MINUTE_MS, SimConfig, Simulator, demo_config


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "simulate",
        help="produce a realistic synthetic bank's events (deterministic with --seed)",
        description="Produce a synthetic bank's input events to Kafka, or print them as "
        "JSONL with --dry-run (replayable with `tierstream replay`).",
    )
    s.add_argument(
        "--demo",
        action="store_true",
        help="the demo's bank: months of a bank's life in a minute, the clock's ticks every "
        "simulated hour (docs/simulator.md); flags given as well override its choices",
    )
    s.add_argument("--customers", type=positive_int, help="default 5000 (1000 with --demo)")
    amount = s.add_mutually_exclusive_group()
    amount.add_argument("--events", type=positive_int, help="stop after N records")
    amount.add_argument("--duration", type=positive_float, help="stop after S wall seconds")
    s.add_argument("--rate", type=positive_float, help="records per second (default: max)")
    s.add_argument(
        "--speed",
        type=positive_float,
        metavar="DAYS_PER_MIN",
        help="simulated days per wall-clock minute (default: as fast as --rate allows)",
    )
    s.add_argument("--seed", type=int, default=42, help="default 42")
    s.add_argument(
        "--bad-share", type=share, help="share of malformed records (default 0; 0.01 with --demo)"
    )
    s.add_argument("--drift-share", type=share, help="share of customers drifting tiers (0.05)")
    s.add_argument(
        "--events-per-day",
        type=positive_int,
        help="customer transactions per simulated day (default 4 per customer; 0.3 with --demo)",
    )
    life = s.add_argument_group(
        "months of a bank's life (off by default; --demo turns them on: 0.04, 0.05, 0.08, 1.2, 395)"
    )
    life.add_argument(
        "--sleeper-share",
        type=share,
        help="customers already quiet at go-live (last transaction 20-85 days before)",
    )
    life.add_argument(
        "--churn-share", type=share, help="customers who stop transacting 5-40 days in"
    )
    life.add_argument("--cash-share", type=share, help="customers who mostly use ATMs/branches")
    life.add_argument(
        "--activity-spread",
        type=float,
        help="lognormal sigma of how active customers are (0: all alike)",
    )
    life.add_argument(
        "--assessment-age-days",
        type=int,
        help="onboarding risk assessments dated up to N days before go-live",
    )
    answers = s.add_argument_group(
        "answers to the worker's offers on offer-responses (read back from the offers "
        "topic; off by default, --demo turns them on: docs/simulator.md)"
    )
    answers.add_argument(
        "--accept-rate",
        action="append",
        type=_accept_rate,
        metavar="KIND:TIER=RATE",
        help="P(accepted) for offers of KIND at TIER ('*' for any; the most specific "
        "wins); repeatable; replaces --demo's table",
    )
    answers.add_argument(
        "--decline-share",
        type=share,
        help="of the offers not accepted, the share declined; the rest is ignored "
        "(default 0.5; 0.4 with --demo)",
    )
    s.add_argument(
        "--tick-minutes",
        type=int,
        metavar="M",
        help="write the clock's ticks (one per partition of the ticks topic) every M "
        "simulated minutes, for a worker run with TIERSTREAM_TICK_INTERVAL=0 (time as "
        "data); 0: none. Default none (60 with --demo)",
    )
    add_kafka_flags(s, partitions=True)
    s.add_argument(
        "--dry-run", action="store_true", help="print JSONL to stdout instead of producing"
    )
    s.set_defaults(func=cmd_simulate)


#: SimConfig field <- flag, for the flags that override the bank's defaults or --demo's.
_OVERRIDES = (
    "drift_share",
    "events_per_day",
    "sleeper_share",
    "churn_share",
    "cash_share",
    "activity_spread",
    "assessment_age_days",
    "decline_share",
)


def _config(args: argparse.Namespace, tick_partitions: int) -> SimConfig:
    """The bank the flags ask for: the default bank or the demo's, then every flag
    given on top. Raises ValueError for a bad combination."""
    customers = args.customers or (1000 if args.demo else SimConfig.customers)
    if args.demo:
        bad = 0.01 if args.bad_share is None else args.bad_share
        base = demo_config(customers, seed=args.seed, bad_share=bad)
    else:
        base = SimConfig(customers=customers, seed=args.seed, bad_share=args.bad_share or 0.0)
    given = {name: getattr(args, name) for name in _OVERRIDES if getattr(args, name) is not None}
    if args.accept_rate:
        given["accept_rates"] = tuple(args.accept_rate)
    ticks: dict[str, Any] = {"tick_partitions": tick_partitions}
    if tick_partitions:
        ticks["tick_every_ms"] = _tick_minutes(args) * MINUTE_MS
    return replace(base, **given, **ticks)


def _accept_rate(text: str) -> tuple[str, str, float]:
    try:
        return parse_accept_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tick_minutes(args: argparse.Namespace) -> int:
    if args.tick_minutes is not None:
        return int(args.tick_minutes)
    return 60 if args.demo else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if _tick_minutes(args) < 0:
        print("tierstream simulate: --tick-minutes must be >= 0", file=sys.stderr)
        return EXIT_INPUT
    tick_partitions = 0
    if _tick_minutes(args):
        # One tick per partition of the ticks topic: the broker knows how many there
        # are; a dry run (no broker) takes --partitions / TIERSTREAM_PARTITIONS.
        try:
            tick_partitions = (
                settings.partitions if args.dry_run else topic_partitions(settings, TOPIC_TICKS)
            )
        except ProduceError as exc:
            print(f"tierstream simulate: {exc}", file=sys.stderr)
            return EXIT_KAFKA
    try:
        cfg = _config(args, tick_partitions)
    except ValueError as exc:
        print(f"tierstream simulate: {exc}", file=sys.stderr)
        return EXIT_INPUT
    sim = Simulator(cfg)
    pace = SimPace(args.speed) if args.speed else None
    started = time.monotonic()
    try:
        if args.dry_run:
            n = write_jsonl(
                sim.labelled(),
                sys.stdout.buffer,
                limit=args.events,
                rate=args.rate,
                duration=args.duration,
                pace=pace,
            )
        else:
            bar = ProgressBar(args.events)
            feed = _offer_feed(settings, cfg)
            records = sim.records() if feed is None else answering(sim.records(), sim, feed)
            try:
                n = produce_records(
                    settings,
                    records,
                    rate=args.rate,
                    limit=args.events,
                    progress=bar,
                    duration=args.duration,
                    pace=pace,
                )
            finally:
                bar.finish()
                if feed is not None:
                    feed.close()
    except OfferFeedError as exc:
        print(f"tierstream simulate: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    except ProduceError as exc:
        print(f"tierstream simulate: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    except KeyboardInterrupt:
        print(f"tierstream simulate: interrupted; labels so far {_labels(sim)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `--dry-run | head`: the reader has enough
        return EXIT_OK
    if cfg.accept_rates and args.dry_run:
        print(
            "tierstream simulate: no answers to offers in --dry-run (they answer the "
            "worker's offers, read back from the offers topic)",
            file=sys.stderr,
        )
    took = time.monotonic() - started
    verb = "wrote" if args.dry_run else "produced"
    print(
        f"tierstream simulate: {verb} {n} records in {took:.1f}s "
        f"(seed {cfg.seed}, {cfg.customers} customers; {_labels(sim)}"
        + (f"; offers answered {sim.answered}" if cfg.accept_rates and not args.dry_run else "")
        + ")",
        file=sys.stderr,
    )
    return EXIT_OK


def _offer_feed(settings: Settings, cfg: SimConfig) -> OfferFeed | None:
    """The worker's offers to answer, when the bank answers any (else None)."""
    return OfferFeed(settings) if cfg.accept_rates else None


def _labels(sim: Simulator) -> str:
    ok = sim.stats.get(LABEL_OK, 0)
    rest = ", ".join(f"{k} {v}" for k, v in sorted(sim.stats.items()) if k != LABEL_OK)
    return f"ok {ok}" + (f", {rest}" if rest else "")
