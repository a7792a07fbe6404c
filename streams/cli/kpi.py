"""``tierstream kpi --from DATE --to DATE --out DIR``: does tiering work?

Reads ``tier-changes``, ``offers`` and ``offer-responses`` from the beginning up to
their end at the start of the run (streams/tools/kpi_read.py, with a progress bar on
long reads), computes the period's migration, retention and offer conversion
(streams/tools/kpi.py: every definition) and writes ``migration.csv``,
``conversion.csv``, ``retention.csv``, three charts and ``report.md`` /
``report.html`` into ``--out`` (streams/tools/kpi_render.py). Dates are local days in
the rules' time zone (``--rules`` / ``TIERSTREAM_RULES``), both inclusive.

Exit codes: 0 written, 1 Kafka unreachable or a topic missing or stalled, 2 bad
arguments or the output directory cannot be written.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from streams.cli.common import EXIT_INPUT, EXIT_KAFKA, EXIT_OK, add_kafka_flags, settings_from_args


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def add_parser(sub: Any) -> None:
    k = sub.add_parser(
        "kpi",
        help="tiering KPIs of a period: migration, retention, offer conversion (CSV + report)",
        description="Read tier-changes, offers and offer-responses from the beginning to "
        "their current end and write the period's migration.csv, conversion.csv, "
        "retention.csv and report.md/report.html with charts into --out.",
    )
    k.add_argument("--from", dest="first", required=True, type=_date, help="first day (local)")
    k.add_argument("--to", dest="last", required=True, type=_date, help="last day (local)")
    k.add_argument("--out", required=True, type=Path, help="output directory (created)")
    k.add_argument("--rules", help="rules file: its time zone sets the days (env TIERSTREAM_RULES)")
    add_kafka_flags(k)
    k.set_defaults(func=cmd_kpi)


def cmd_kpi(args: argparse.Namespace) -> int:
    # imported here: the parser stays light (Kafka client, matplotlib load for a run)
    from schemas.decoder import Decoder
    from state.rules import load_rules
    from streams.cli.common import ProgressBar
    from streams.settings import SecurityConfigError
    from streams.tools.kpi import KpiInput, Period, compute
    from streams.tools.kpi_read import KpiReadError, read_kpi_topics
    from streams.tools.kpi_render import Source, write_kpis

    settings = settings_from_args(args)
    try:
        rules = load_rules(settings.rules_path)
        period = Period.of(args.first, args.last, rules)
    except ValueError as exc:
        print(f"tierstream kpi: {exc}", file=sys.stderr)
        return EXIT_INPUT
    inp = KpiInput(period)
    bar = ProgressBar(None)
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        bar.total = total or None
        bar(done)

    try:
        extents = read_kpi_topics(settings, Decoder(**rules.limits.decoder()), inp, progress)
    except (KpiReadError, SecurityConfigError) as exc:
        print(f"\ntierstream kpi: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    finally:
        bar.finish()
    kpis = compute(inp)
    source = Source(
        settings.kafka_bootstrap,
        {t: (e.topic, e.records) for t, e in extents.items()},
        rules.timezone,
        time.monotonic() - started,
    )
    try:
        written = write_kpis(kpis, inp, args.out, source)
    except OSError as exc:
        print(f"tierstream kpi: cannot write {args.out}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    malformed = sum(inp.malformed.values())
    print(
        f"tierstream kpi: {period.first}..{period.last}: {kpis.customers:,} customers, "
        f"{sum(r.offers for r in kpis.conversion):,} offers; read "
        f"{sum(inp.records.values()):,} records in {source.seconds:.1f}s"
        + (f", {malformed:,} malformed (left out, see report.md)" if malformed else "")
        + f"; wrote {', '.join(p.name for p in written)} to {args.out}",
        file=sys.stderr,
    )
    return EXIT_OK
