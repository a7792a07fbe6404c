"""``tierstream profile``: print a customer's profile from Redis, as JSON.

Reads Redis directly (streams/redis_sink.py), without faust or a running worker, and,
like the HTTP API, shows nothing unless the read's audit record (``profile.read`` by
``user@host``, role ``cli``; streams/audit.py) was acknowledged by the broker first.
Exit codes: 0 shown, 1 no such profile, 3 the audit record could not be written
(nothing shown).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from streams.cli.common import EXIT_AUDIT, add_kafka_flags, settings_from_args


def add_parser(sub: Any) -> None:
    p = sub.add_parser("profile", help="print a customer's profile from Redis")
    p.add_argument("customer_id")
    p.add_argument("--redis-url", help="env REDIS_URL")
    p.add_argument("--redis-prefix", help="env TIERSTREAM_REDIS_PREFIX")
    add_kafka_flags(p)  # the audit topic
    p.set_defaults(func=cmd_profile)


def cmd_profile(args: argparse.Namespace) -> int:
    from streams.audit import (
        ROLE_CLI,
        AuditUnavailable,
        audit_timeout,
        cli_principal,
        profile_read,
        write_record,
    )
    from streams.redis_sink import connect, read_profile

    settings = settings_from_args(args)

    async def fetch() -> dict[str, str]:
        client = connect(settings.redis_url, settings.redis_password, settings.redis_username)
        try:
            return await read_profile(client, settings.redis_key_prefix, args.customer_id)
        finally:
            await client.aclose()

    profile = asyncio.run(fetch())
    record = profile_read(
        args.customer_id, "ok" if profile else "not_found", cli_principal(), ROLE_CLI
    )
    try:
        write_record(settings, record, audit_timeout(settings))
    except AuditUnavailable as exc:
        print(f"tierstream profile: {exc}; nothing shown", file=sys.stderr)
        return EXIT_AUDIT
    if not profile:
        print(f"no profile for customer {args.customer_id}", file=sys.stderr)
        return 1
    sys.stdout.write(profile_json(profile).decode() + "\n")
    return 0


def profile_json(profile: dict[str, str]) -> bytes:
    return orjson.dumps(profile, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
