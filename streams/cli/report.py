"""``tierstream report``: the management report as PNG charts plus a summary page.

Reads every profile from Redis (streams/tools/report.py) and writes what
streams/tools/report_render.py draws into ``--out``: ``tiers.png``, ``lorenz.png``,
``rfm.png``, ``clv_by_tier.png``, ``report.md`` and ``report.html``. matplotlib is
imported only when a report is written, not when the parser is built.

Every profile read is a bulk export of customer data: one ``profiles.export`` record
(how many profiles, by ``user@host``, role ``cli``; streams/audit.py) must be
acknowledged on the audit topic before any file is written.

Exit codes: 0 written, 1 Redis unreachable or no profiles under the prefix, 2 the output
directory cannot be written, 3 the audit record could not be written (nothing written).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from streams.cli.common import EXIT_AUDIT, add_kafka_flags, settings_from_args

if TYPE_CHECKING:
    from streams.settings import Settings
    from streams.tools.report import LoadedProfiles

EXIT_OK = 0
EXIT_NO_DATA = 1
EXIT_OUTPUT = 2


def add_parser(subparsers: Any) -> None:
    """Register ``report`` on the ``tierstream`` sub-command parser."""
    p = subparsers.add_parser(
        "report",
        help="management report from the Redis profiles: PNG charts and a summary",
        description="Read every customer profile from Redis (SCAN) and write charts "
        "(tier distribution, Lorenz curves of AUM and of contribution with their top-20%% "
        "shares, RFM grid, CLV by tier) and report.md / report.html with the high-value "
        "and the top-contribution customers most at risk.",
    )
    p.add_argument("--redis-url", help="Redis URL (env REDIS_URL)")
    p.add_argument("--redis-prefix", help="Redis key prefix (env TIERSTREAM_REDIS_PREFIX)")
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.add_argument("--top", type=int, default=20, help="customers in the churn-risk list")
    add_kafka_flags(p)  # the audit topic
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    # imported here: the parser, which every command builds, stays light (Redis client,
    # Prometheus, the report's figures and charts load only for a report)
    from streams.audit import (
        ROLE_CLI,
        AuditUnavailable,
        audit_timeout,
        cli_principal,
        profiles_export,
        write_record,
    )
    from streams.tools.report import build_report
    from streams.tools.report_render import write_report

    settings = settings_from_args(args)
    try:
        loaded = asyncio.run(_load(settings))
    except (RedisError, OSError) as exc:
        print(f"tierstream report: cannot read Redis: {exc}", file=sys.stderr)
        return EXIT_NO_DATA
    if not loaded.rows:
        print(
            f"tierstream report: no readable profiles under prefix "
            f"{settings.redis_key_prefix!r} ({len(loaded.problems)} unreadable)",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    record = profiles_export(len(loaded.rows), cli_principal(), ROLE_CLI)
    try:
        write_record(settings, record, audit_timeout(settings))
    except AuditUnavailable as exc:
        print(f"tierstream report: {exc}; nothing written", file=sys.stderr)
        return EXIT_AUDIT
    report = build_report(loaded, churn_top=args.top)
    try:
        written = write_report(report, args.out, settings.redis_key_prefix)
    except OSError as exc:
        print(f"tierstream report: cannot write {args.out}: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    for problem in report.problems[:10]:
        print(f"tierstream report: skipped profile {problem[0]}: {problem[1]}", file=sys.stderr)
    print(
        f"tierstream report: {report.customers} customers, top 20% hold "
        f"{report.top20_share:.1%} of AUM and bring {report.contribution_top20_share:.1%} "
        f"of the contribution; wrote {', '.join(p.name for p in written)} to {args.out}",
        file=sys.stderr,
    )
    return EXIT_OK


async def _load(settings: Settings) -> LoadedProfiles:
    from streams.redis_sink import connect
    from streams.tools.report import load_profiles

    creds = settings.redis_credentials()
    client = connect(settings.redis_url, creds.password, creds.username)
    try:
        return await load_profiles(client, settings.redis_key_prefix)
    finally:
        await client.aclose()
