"""The ``tierstream`` command: one module per sub-command, ``main`` here.

worker, health, topics create, redis install-functions/acl-rules, rules publish/history/show,
backtest, profile, simulate, replay,
clv fit/score, token create/list/revoke, report, kpi. Every command reads its configuration
from the environment (streams/settings.py) and its flags override it (common.py), so
the same command works in a shell, in systemd and in a container. Building the parser
imports no heavy library: each command imports what it runs when it runs
(tests/streams/cli/test_cli_imports.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streams.cli import (
    backtest,
    clv,
    health,
    kpi,
    profile,
    redis_admin,
    replay,
    report,
    rules,
    simulate,
    token,
    topics,
    worker,
)

#: What ``tierstream --help`` says above the commands.
_DESCRIPTION = """The ``tierstream`` command: worker, topics, simulate, replay, profile, clv.

Every command reads its configuration from the environment (streams/settings.py)
and the flags below override it, so the same command works in a shell, in systemd
and in a container.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierstream", description=_DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (
        worker,
        health,
        topics,
        redis_admin,
        rules,
        backtest,
        profile,
        simulate,
        replay,
        clv,
        token,
        report,
        kpi,
    ):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc
