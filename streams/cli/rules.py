"""``tierstream rules publish | history | show``: versions of the rules on the ``rules`` topic.

A version is a rules file (TOML, the same format and loader as ``--rules``) with the
event time from which it decides (``--effective-from``, default the publish time).
Every worker takes it up then, without a restart (docs/operations.md, "Changing the
rules", is the whole flow: draft, backtest, publish). Exit codes: 0 done, 1 Kafka (or
the audit record not written after the version was), 2 the file or the request is
refused (nothing written), 3 written but refused by its readers (a clock behind the
broker's: see the message).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from streams.cli.common import EXIT_INPUT, EXIT_KAFKA, EXIT_OK, add_kafka_flags, settings_from_args

EXIT_REFUSED = 3


def add_parser(sub: Any) -> None:
    r = sub.add_parser("rules", help="publish, list and show versions of the rules")
    rsub = r.add_subparsers(dest="rules_command", required=True)
    p = rsub.add_parser(
        "publish",
        help="publish a rules file as a new version",
        description="Validate FILE with the worker's loader and publish it on the rules topic; "
        "every worker decides events from --effective-from on by it.",
    )
    p.add_argument("file", help="rules file (TOML, keys overriding the packaged defaults)")
    p.add_argument("--label", default="", help="what the change is, for people")
    p.add_argument(
        "--effective-from",
        metavar="TS",
        help="event time it takes effect, RFC 3339 with an offset (default: the publish time)",
    )
    p.add_argument("--by", help="who publishes it (default: the operating-system user)")
    add_kafka_flags(p)
    p.set_defaults(func=cmd_publish)
    h = rsub.add_parser("history", help="list every publication and what became of it")
    h.add_argument("--json", action="store_true", help="one JSON object per line")
    add_kafka_flags(h)
    h.set_defaults(func=cmd_history)
    s = rsub.add_parser("show", help="print one version (default: the one in force now)")
    s.add_argument("version", nargs="?", help="the version (default: in force now)")
    s.add_argument("--rules", help="the workers' start-up rules file (env TIERSTREAM_RULES)")
    add_kafka_flags(s)
    s.set_defaults(func=cmd_show)


def _ts(text: str) -> int:
    from streams.rules_log import parse_ts

    try:
        return parse_ts(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_publish(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from schemas.timefmt import format_ts_utc
    from streams.audit import AuditUnavailable
    from streams.rules_topic import PublishError, publish

    settings = settings_from_args(args)
    try:
        text = Path(args.file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"tierstream rules publish: {exc}", file=sys.stderr)
        return EXIT_INPUT
    try:
        effective = _ts(args.effective_from) if args.effective_from else None
        result = publish(
            settings, text, args.file, label=args.label, effective_from=effective, by=args.by
        )
    except (ValueError, PublishError, argparse.ArgumentTypeError) as exc:
        print(f"tierstream rules publish: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KafkaException as exc:
        print(f"tierstream rules publish: Kafka: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    except AuditUnavailable as exc:
        # The rules record is on the topic (the workers will take it up); only its
        # audit record is missing: say so loudly, the operator must record it.
        print(
            f"tierstream rules publish: the version was published but {exc}; record the "
            "publication by hand ('tierstream rules history' shows it)",
            file=sys.stderr,
        )
        return EXIT_KAFKA
    rec, entry = result.record, result.entry
    if entry.status != "accepted":
        print(
            f"tierstream rules publish: version {rec.version} was written (offset "
            f"{entry.offset}) but its readers refuse it: {entry.reason}",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    wait = (rec.effective_from - int(time.time() * 1000)) / 1000
    print(
        f"published {rec.version} (offset {entry.offset}) by {rec.published_by}: takes effect "
        f"at {format_ts_utc(rec.effective_from)} (in {wait:,.0f} s)"
        + (f" -- {rec.label}" if rec.label else "")
    )
    return EXIT_OK


def _rows(history: Any) -> list[dict[str, Any]]:
    from schemas.timefmt import format_ts_utc

    rows = []
    for e in history.entries:
        r = e.record
        rows.append(
            {
                "offset": e.offset,
                "partition": e.partition,
                "status": e.status,
                "version": e.version,
                "effective_from": format_ts_utc(r.effective_from) if r else "",
                "published_at": format_ts_utc(r.published_at) if r else "",
                "appended_at": format_ts_utc(e.append_ms),
                "published_by": r.published_by if r else "",
                "label": r.label if r else "",
                "reason": e.reason,
            }
        )
    return rows


def cmd_history(args: argparse.Namespace) -> int:
    import orjson
    from confluent_kafka import KafkaException

    from state.rules import load_rules
    from streams.rules_topic import read_history

    settings = settings_from_args(args)
    try:
        history = read_history(settings, load_rules(None))
    except KafkaException as exc:
        print(f"tierstream rules history: Kafka: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    rows = _rows(history)
    if args.json:
        for row in rows:
            print(orjson.dumps(row).decode())
        return EXIT_OK
    if not rows:
        print("no versions published: every worker decides by its start-up rules")
        return EXIT_OK
    print(f"{'offset':>6}  {'status':10}  {'version':24}  {'effective from':24}  {'by':12}  label")
    for row in rows:
        print(
            f"{row['offset']:>6}  {row['status']:10}  {row['version'][:24]:24}  "
            f"{row['effective_from']:24}  {row['published_by'][:12]:12}  {row['label']}"
        )
        if row["reason"]:
            print(f"{'':8}{row['reason']}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from schemas.timefmt import format_ts_utc
    from state.rules import load_rules
    from streams.rules_topic import read_history

    settings = settings_from_args(args)
    try:
        base = load_rules(settings.rules_path)
    except (OSError, ValueError) as exc:
        print(f"tierstream rules show: start-up rules: {exc}", file=sys.stderr)
        return EXIT_INPUT
    try:
        history = read_history(settings, base)
    except KafkaException as exc:
        print(f"tierstream rules show: Kafka: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    if args.version is None:
        entry = history.in_force(int(time.time() * 1000))
    else:
        entry = history.find(args.version)
    if entry is None or entry.record is None:
        if args.version is None or args.version == base.version:
            source = settings.rules_path or "the packaged defaults (state/rules_default.toml)"
            print(f"version: {base.version}\nstatus: the workers' start-up rules ({source})")
            return EXIT_OK
        print(f"tierstream rules show: no version {args.version!r} on the topic", file=sys.stderr)
        return EXIT_INPUT
    r = entry.record
    print(f"version: {r.version}")
    print(f"status: {entry.status}" + (f" ({entry.reason})" if entry.reason else ""))
    print(f"label: {r.label}")
    print(f"effective_from: {format_ts_utc(r.effective_from)}")
    print(f"published_by: {r.published_by}")
    print(f"published_at: {format_ts_utc(r.published_at)}")
    print(f"offset: {entry.partition}:{entry.offset}")
    print("---")
    print(r.toml, end="" if r.toml.endswith("\n") else "\n")
    return EXIT_OK
