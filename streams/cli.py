"""The ``tierstream`` command: worker, topics, simulate, replay, profile, clv.

Every command reads its configuration from the environment (streams/settings.py)
and the flags below override it, so the same command works in a shell, in systemd
and in a container.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from streams.auth_cli import add_token_parser
from streams.clv_cli import add_clv_parser
from streams.report_cli import add_report_parser
from streams.settings import Settings
from streams.sim_cli import add_sim_parsers
from streams.state_cache import DEFAULT_CAPACITY


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    p.add_argument("--topic-prefix", help="topic name prefix (env TIERSTREAM_TOPIC_PREFIX)")
    p.add_argument("--partitions", type=int, help="partitions (env TIERSTREAM_PARTITIONS)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        kafka_bootstrap=getattr(args, "bootstrap", None),
        topic_prefix=getattr(args, "topic_prefix", None),
        partitions=getattr(args, "partitions", None),
        redis_url=getattr(args, "redis_url", None),
        rules_path=getattr(args, "rules", None),
        store=getattr(args, "store", None),
        web_port=getattr(args, "web_port", None),
        web_host=getattr(args, "web_host", None),
        app_id=getattr(args, "app_id", None),
        data_dir=getattr(args, "data_dir", None),
        processing_guarantee=getattr(args, "processing_guarantee", None),
        redis_key_prefix=getattr(args, "redis_prefix", None),
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.app import EXIT_FATAL, TierstreamService, WorkerTuning, run_worker
    from streams.security import KafkaAuthError, SecurityConfigError, kafka_preflight
    from streams.topics import TopologyError, verify_copartitioned

    settings = settings_from_args(args)
    try:
        kafka_preflight(settings.confluent_config())
        verify_copartitioned(settings)
    except (KafkaAuthError, SecurityConfigError) as exc:
        print(f"tierstream worker: {exc}", file=sys.stderr)
        return 2
    except TopologyError as exc:
        print(f"tierstream worker: {exc}", file=sys.stderr)
        return EXIT_FATAL
    tuning = WorkerTuning(
        batch_max=args.batch_max,
        batch_within=args.batch_within,
        max_idle_ms=args.max_idle_ms,
        max_lag_wait_ms=args.max_lag_wait_ms,
        max_future_skew_ms=args.max_future_skew_ms,
        restore_budget_s=args.restore_budget_s,
        state_cache=args.state_cache,
    )
    service = TierstreamService(settings, tuning=tuning)
    if settings.processing_guarantee == "exactly_once":
        service.discard_uncommitted_local_state()
    logging.getLogger("tierstream").info("settings: %s", settings.redacted())
    run_worker(service, loglevel=args.loglevel)
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    from streams.security import KafkaAuthError, SecurityConfigError, kafka_preflight
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


def cmd_profile(args: argparse.Namespace) -> int:
    from streams.app import profile_json
    from streams.redis_sink import connect, read_profile

    settings = settings_from_args(args)

    async def fetch() -> dict[str, str]:
        client = connect(settings.redis_url, settings.redis_password, settings.redis_username)
        try:
            return await read_profile(client, settings.redis_key_prefix, args.customer_id)
        finally:
            await client.aclose()

    profile = asyncio.run(fetch())
    if not profile:
        print(f"no profile for customer {args.customer_id}", file=sys.stderr)
        return 1
    sys.stdout.write(profile_json(profile).decode() + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run the stream processor (faust worker)")
    _common(w)
    w.add_argument("--redis-url", help="Redis URL, redis:// or rediss:// (env REDIS_URL)")
    w.add_argument("--redis-prefix", help="Redis key prefix (env TIERSTREAM_REDIS_PREFIX)")
    w.add_argument("--rules", help="rules file, TOML (env TIERSTREAM_RULES)")
    w.add_argument("--store", help="table store: rocksdb:// or memory:// (env TIERSTREAM_STORE)")
    w.add_argument("--web-host", help="HTTP host (env TIERSTREAM_WEB_HOST)")
    w.add_argument("--web-port", type=int, help="HTTP port (env TIERSTREAM_WEB_PORT)")
    w.add_argument("--app-id", help="consumer group / app id (env TIERSTREAM_APP_ID)")
    w.add_argument("--data-dir", help="local state directory (env TIERSTREAM_DATA_DIR)")
    w.add_argument(
        "--processing-guarantee",
        choices=["at_least_once", "exactly_once"],
        help="env TIERSTREAM_PROCESSING_GUARANTEE",
    )
    w.add_argument("--batch-max", type=int, default=1000, help="max events per batch")
    w.add_argument(
        "--state-cache",
        type=int,
        default=DEFAULT_CAPACITY,
        help="customer states kept in memory between batches, about their serialized "
        "size each (~1.2 KB with 90 days of history; 0: off, every state read from the store)",
    )
    w.add_argument(
        "--batch-within",
        type=float,
        default=0.0,
        help="extra seconds to wait for a batch to fill (0: take what is waiting)",
    )
    w.add_argument(
        "--max-idle-ms",
        type=int,
        default=2000,
        help="longest wait for an input partition whose end offset is unknown",
    )
    w.add_argument(
        "--max-lag-wait-ms",
        type=int,
        default=2000,
        help="longest wait for an input partition known to hold unfetched records",
    )
    w.add_argument(
        "--max-future-skew-ms",
        type=int,
        default=300_000,
        help="events stamped further in the future than this go to dead-letters",
    )
    w.add_argument(
        "--restore-budget-s",
        type=float,
        default=None,
        help="longest bulk changelog read per rebalance before faust's own recovery takes "
        "the rest (default: 60%% of faust's broker request timeout; 0: faust's only)",
    )
    w.add_argument("--loglevel", default="info")
    w.set_defaults(func=cmd_worker)

    t = sub.add_parser("topics", help="manage topics")
    tsub = t.add_subparsers(dest="topics_command", required=True)
    tc = tsub.add_parser("create", help="create every topic (idempotent)")
    _common(tc)
    tc.add_argument("--app-id", help="app id, names the changelog topic (env TIERSTREAM_APP_ID)")
    tc.set_defaults(func=cmd_topics_create)

    p = sub.add_parser("profile", help="print a customer's profile from Redis")
    p.add_argument("customer_id")
    p.add_argument("--redis-url", help="env REDIS_URL")
    p.add_argument("--redis-prefix", help="env TIERSTREAM_REDIS_PREFIX")
    p.set_defaults(func=cmd_profile)

    add_sim_parsers(sub)
    add_clv_parser(sub)
    add_token_parser(sub)
    add_report_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
