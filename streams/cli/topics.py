"""``tierstream topics create``: make every topic the service needs (idempotent).

Partitions, replication and retention are explicit (streams/topics.py says why and
which); existing topics are brought to their configured retention. Replication 1 for
the audit topic is refused unless ``--dev-single-replica`` says this is a single
development broker. Exit codes: 0 done, 2 refused (credentials, topology, settings).
"""

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
    tc.add_argument(
        "--replication-factor",
        type=int,
        help="replicas of every topic (env TIERSTREAM_REPLICATION_FACTOR; 3 in production)",
    )
    tc.add_argument(
        "--retention",
        action="append",
        metavar="TOPIC=DURATION",
        help="retention of one topic, e.g. audit=730d or dead-letters=7d (repeatable; "
        "over env TIERSTREAM_RETENTION and the defaults)",
    )
    tc.add_argument(
        "--dev-single-replica",
        action="store_true",
        default=None,
        help="development only: allow replication 1 for the audit topic (a single local "
        "broker; env TIERSTREAM_DEV_SINGLE_REPLICA)",
    )
    tc.add_argument(
        "--grant-user",
        metavar="USER",
        help="also ALLOW the worker's ACL set (docs/security.md) to User:USER, for a "
        "broker with an authorizer (idempotent)",
    )
    tc.set_defaults(func=cmd_topics_create)


def cmd_topics_create(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from streams.kafka_access import KafkaAuthError, grant_acls, kafka_preflight
    from streams.settings import SecurityConfigError, parse_retention
    from streams.topics import TopologyError, create_topics

    try:
        settings = settings_from_args(args)
        flags = parse_retention(",".join(args.retention or []), "--retention")
    except ValueError as exc:
        print(f"tierstream topics create: {exc}", file=sys.stderr)
        return 2
    settings = settings.with_overrides(
        replication_factor=args.replication_factor,
        dev_single_replica=args.dev_single_replica,
        retention={**settings.retention, **flags},
    )
    try:
        kafka_preflight(settings.confluent_config())
        status = create_topics(settings)
        granted = grant_acls(settings, args.grant_user) if args.grant_user else 0
    except (KafkaAuthError, SecurityConfigError, KafkaException) as exc:
        print(f"tierstream topics create: {exc}", file=sys.stderr)
        return 2
    except TopologyError as exc:
        print(f"tierstream topics create: {exc}", file=sys.stderr)
        return 2
    for name, st in sorted(status.items()):
        print(f"{st:8s} {name}")
    if granted:
        print(f"granted  {granted} ACL bindings to User:{args.grant_user}")
    return 0
