"""``tierstream simulate`` and ``tierstream replay``: the CLI around simulator and loader.

Kept apart from streams/cli.py so the worker's command line does not import the
simulator; ``add_sim_parsers`` is called by ``streams.cli.build_parser``. Handlers take
the parsed ``argparse.Namespace`` and return the process exit code:
0 done, 1 Kafka/delivery error, 2 bad input file or arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Iterable
from itertools import islice
from typing import IO, Any, Final

import orjson

from schemas.events import INPUT_TOPICS
from streams.settings import Settings
from streams.tools.loader import (
    KEY_FIELD,
    LABEL_FIELD,
    RAW_FIELD,
    TOPIC_FIELD,
    ProduceError,
    ReplayFileError,
    ReplayStats,
    TokenBucket,
    count_lines,
    produce_records,
    read_replay_file,
)
from streams.tools.simulator import LABEL_OK, SimConfig, SimRecord, Simulator, is_bad

EXIT_OK: Final = 0
EXIT_KAFKA: Final = 1
EXIT_INPUT: Final = 2
EXIT_INTERRUPTED: Final = 130


def add_sim_parsers(subparsers: Any) -> None:
    """Register ``simulate`` and ``replay`` on the ``tierstream`` sub-command parser."""
    s = subparsers.add_parser(
        "simulate",
        help="produce a realistic synthetic bank's events (deterministic with --seed)",
        description="Produce a synthetic bank's input events to Kafka, or print them as "
        "JSONL with --dry-run (replayable with `tierstream replay`).",
    )
    s.add_argument("--customers", type=_positive_int, default=5000, help="default 5000")
    amount = s.add_mutually_exclusive_group()
    amount.add_argument("--events", type=_positive_int, help="stop after N records")
    amount.add_argument("--duration", type=_positive_float, help="stop after S wall seconds")
    s.add_argument("--rate", type=_positive_float, help="records per second (default: max)")
    s.add_argument("--seed", type=int, default=42, help="default 42")
    s.add_argument("--bad-share", type=_share, default=0.0, help="share of malformed records")
    s.add_argument(
        "--drift-share", type=_share, default=0.05, help="share of customers drifting tiers"
    )
    s.add_argument(
        "--events-per-day",
        type=_positive_int,
        help="customer transactions per simulated day (default 4 per customer)",
    )
    _kafka_flags(s)
    s.add_argument(
        "--dry-run", action="store_true", help="print JSONL to stdout instead of producing"
    )
    s.set_defaults(func=cmd_simulate)

    r = subparsers.add_parser(
        "replay",
        help="produce a JSONL or CSV file into the input topics",
        description="Produce events from a file (JSONL with a 'topic' field per line, or "
        "CSV with --topic) into the input topics, with a progress bar on stderr.",
    )
    r.add_argument("file", help="JSONL or CSV file; - reads standard input")
    r.add_argument("--topic", choices=INPUT_TOPICS, help="input topic for every line")
    r.add_argument("--format", choices=("jsonl", "csv"), help="default: by file extension")
    r.add_argument("--rate", type=_positive_float, help="records per second (default: max)")
    r.add_argument(
        "--no-validate",
        action="store_true",
        help="do not pre-check records with the decoder (faster; no dead-letter forecast)",
    )
    _kafka_flags(r)
    r.set_defaults(func=cmd_replay)


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
                    _settings(args),
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
            n = produce_records(_settings(args), records, rate=args.rate, progress=bar)
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


def to_jsonl_line(label: str, rec: SimRecord) -> bytes:
    """One ``--dry-run`` line (without newline) that ``replay`` turns back into ``rec``.

    A good record is its JSON object with ``topic`` in front; a malformed one cannot be
    embedded as JSON, so it travels base64-encoded in ``_raw_b64`` with its key.
    """
    if not is_bad(label) and rec.value[:1] == b"{" and rec.value[1:2] != b"}":
        return b'{"' + TOPIC_FIELD.encode() + b'":' + orjson.dumps(rec.topic) + b"," + rec.value[1:]
    return orjson.dumps(
        {
            TOPIC_FIELD: rec.topic,
            KEY_FIELD: rec.key.decode("utf-8", "replace"),
            RAW_FIELD: base64.b64encode(rec.value).decode(),
            LABEL_FIELD: label,
        }
    )


def write_jsonl(
    labelled: Iterable[tuple[str, SimRecord]],
    out: IO[bytes],
    limit: int | None = None,
    rate: float | None = None,
    duration: float | None = None,
) -> int:
    """Write ``--dry-run`` lines; same limit/rate/duration semantics as producing."""
    bucket = TokenBucket(rate) if rate else None
    deadline = time.monotonic() + duration if duration is not None else None
    n = 0
    source = labelled if limit is None else islice(labelled, limit)
    for label, rec in source:
        if deadline is not None and time.monotonic() >= deadline:
            break
        if bucket is not None:
            bucket.take()
        out.write(to_jsonl_line(label, rec) + b"\n")
        n += 1
    out.flush()
    return n


class ProgressBar:
    """A one-line text progress bar on stderr, redrawn in place (no dependency)."""

    def __init__(self, total: int | None, stream: IO[str] | None = None, width: int = 30) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._start = time.monotonic()
        self._drawn = False

    def __call__(self, done: int) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        speed = f"{done / elapsed:,.0f} rec/s"
        if self.total:
            frac = min(done / self.total, 1.0)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"[{bar}] {frac:6.1%} {done:,}/{self.total:,} {speed}"
        else:
            text = f"{done:,} records {speed}"
        self.stream.write("\r" + text + " " * 4)
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _labels(sim: Simulator) -> str:
    ok = sim.stats.get(LABEL_OK, 0)
    rest = ", ".join(f"{k} {v}" for k, v in sorted(sim.stats.items()) if k != LABEL_OK)
    return f"ok {ok}" + (f", {rest}" if rest else "")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        kafka_bootstrap=args.bootstrap, topic_prefix=args.topic_prefix
    )


def _kafka_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    p.add_argument("--topic-prefix", help="topic name prefix (env TIERSTREAM_TOPIC_PREFIX)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value
