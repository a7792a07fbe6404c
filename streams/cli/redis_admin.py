"""``tierstream redis install-functions`` / ``acl-rules``: the administrator's Redis steps.

``install-functions`` loads this build's Function library (streams/redis_functions.py)
with ``FUNCTION LOAD REPLACE`` — idempotent, so deploy scripts run it on every start —
and says whether the server may lack the 2025 Lua fixes. It needs a Redis user that
may run ``FUNCTION LOAD`` (an administrator; ``REDIS_URL``/``REDIS_USERNAME``/
``REDIS_PASSWORD`` as for every command), never the worker's user, which may only call
the functions. ``--prune`` deletes older ``tierstream_v<N>`` libraries once no worker
of an older release runs. ``acl-rules`` prints the worker user's ACL rules for a key
prefix (what docs/security.md shows), for ``ACL SETUSER`` or a users file.

Exit codes: 0 done, 1 Redis unreachable or refused, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from streams.cli.common import settings_from_args


def add_parser(sub: Any) -> None:
    r = sub.add_parser("redis", help="administrator's Redis steps (functions, ACL rules)")
    rsub = r.add_subparsers(dest="redis_command", required=True)
    i = rsub.add_parser(
        "install-functions",
        help="load tierstream's Redis Function library (idempotent; needs FUNCTION LOAD)",
    )
    i.add_argument("--redis-url", help="an administrator's Redis URL (env REDIS_URL)")
    i.add_argument(
        "--prune",
        action="store_true",
        help="also delete older tierstream_v<N> libraries (once no older worker runs)",
    )
    i.set_defaults(func=cmd_install_functions)
    a = rsub.add_parser("acl-rules", help="print the worker user's ACL rules for a key prefix")
    a.add_argument("--redis-prefix", help="key prefix (env TIERSTREAM_REDIS_PREFIX)")
    a.set_defaults(func=cmd_acl_rules)


def cmd_install_functions(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from streams.redis_functions import (
        LIBRARY,
        check_functions,
        install_functions,
        lua_fixes_missing,
    )
    from streams.redis_sink import connect
    from streams.settings import SecurityConfigError, redact_url

    settings = settings_from_args(args)
    try:
        creds = settings.redis_credentials()
    except SecurityConfigError as exc:
        print(f"tierstream redis install-functions: {exc}", file=sys.stderr)
        return 2

    async def run() -> tuple[list[str], str]:
        client = connect(settings.redis_url, creds.password, creds.username)
        try:
            removed = await install_functions(client, prune=args.prune)
            found = await check_functions(client)
            return removed, found.server_version
        finally:
            await client.aclose()

    try:
        removed, server = asyncio.run(run())
    except (RedisError, OSError) as exc:
        print(
            f"tierstream redis install-functions: {redact_url(settings.redis_url)}: "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(f"loaded {LIBRARY} on Redis {server}")
    for name in removed:
        print(f"deleted {name}")
    warning = lua_fixes_missing(server, settings.redis_accept_versions)
    if warning:
        print(f"tierstream redis install-functions: warning: {warning}", file=sys.stderr)
    return 0


def cmd_acl_rules(args: argparse.Namespace) -> int:
    from streams.redis_sink import redis_acl_rules
    from streams.settings import SecurityConfigError

    settings = settings_from_args(args)
    try:
        print(" ".join(redis_acl_rules(settings.redis_key_prefix)))
    except SecurityConfigError as exc:
        print(f"tierstream redis acl-rules: {exc}", file=sys.stderr)
        return 2
    return 0
