"""``tierstream topics create``: make every topic the service needs (idempotent)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streams.cli.common import add_kafka_flags, settings_from_args


def add_parser(sub: Any) -> None:
    t = sub.add_parser("topics", help="manage topics")
    tsub = t.add_subparsers(dest="topics_command", required=True)
    tc = tsub.add_parser("create", help="create every topic (idempotent)")
    add_kafka_flags(tc, partitions=True)
    tc.add_argument("--app-id", help="app id, names the changelog topic (env TIERSTREAM_APP_ID)")
    tc.set_defaults(func=cmd_topics_create)


def cmd_topics_create(args: argparse.Namespace) -> int:
    from streams.kafka_access import KafkaAuthError, kafka_preflight
    from streams.settings import SecurityConfigError
    from streams.topics import TopologyError, create_topics

    settings = settings_from_args(args)
    try:
        kafka_preflight(settings.confluent_config())
        status = create_topics(settings)
    except (KafkaAuthError, SecurityConfigError) as exc:
        print(f"tierstream topics create: {exc}", file=sys.stderr)
        return 2
    except TopologyError as exc:
        print(f"tierstream topics create: {exc}", file=sys.stderr)
        return 2
    for name, st in sorted(status.items()):
        print(f"{st:8s} {name}")
    return 0
