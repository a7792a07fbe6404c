"""``tierstream worker``: run the stream processor (streams/worker/) in this process.

Checks before it starts: the Redis credential rule, that Kafka accepts the credentials
(``kafka_preflight``), that the topics are co-partitioned, and that Redis holds this
build's Function library (``check_redis``; a warning when the server may lack the 2025
Lua fixes); the worker itself is imported only here, so other commands never load
faust.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

from streams.cli.common import add_kafka_flags, settings_from_args
from streams.pipeline.state_cache import DEFAULT_CAPACITY

if TYPE_CHECKING:
    from streams.settings import Settings


def add_parser(sub: Any) -> None:
    w = sub.add_parser("worker", help="run the stream processor (faust worker)")
    add_kafka_flags(w, partitions=True)
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
        default=None,
        help="events stamped further in the future than this go to dead-letters "
        "(default: the rules' limits.max_future_skew_ms, 300000 unless changed; "
        "the flag replaces the rules' value)",
    )
    w.add_argument(
        "--time-regression-tolerance-ms",
        type=int,
        default=None,
        help="count an input record in tierstream_input_time_regressions_total when its "
        "event time is more than this behind its partition's latest "
        "(env TIERSTREAM_TIME_REGRESSION_TOLERANCE_MS, default 60000)",
    )
    w.add_argument(
        "--restore-budget-s",
        type=float,
        default=None,
        help="longest bulk changelog read per rebalance before faust's own recovery takes "
        "the rest (default: 60%% of faust's broker request timeout; 0: faust's only)",
    )
    w.add_argument(
        "--tick-budget",
        type=int,
        default=2000,
        help="customers one tick fires at most per partition (the rest on ticks a second "
        "apart: a rules version taking effect wakes everyone); 0: no limit",
    )
    w.add_argument(
        "--max-rules-wait-ms",
        type=int,
        default=360_000,
        help="longest wait for a check of the rules topic before held events are decided "
        "by the versions known (logged and counted)",
    )
    w.add_argument(
        "--pareto-interval",
        type=float,
        default=60.0,
        help="seconds between refreshes of the Pareto gauges (AUM and contribution "
        "top-20%% shares, contribution per tier), each a scan of the Redis profiles",
    )
    w.add_argument("--loglevel", default="info")
    w.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker.faust_glue.environment import scrub_faust_environment

    # before faust is imported: it reads FAUST_*/F_* variables at import time
    ignored = scrub_faust_environment()
    log = logging.getLogger("tierstream")
    if ignored:
        log.warning("ignored faust's own environment variables: %s", ", ".join(ignored))
    from streams.kafka_access import KafkaAuthError, kafka_preflight
    from streams.redis_functions import RedisFunctionsError
    from streams.settings import SecurityConfigError
    from streams.topics import TopologyError, verify_copartitioned
    from streams.worker.loop import EXIT_FATAL
    from streams.worker.service import TierstreamService, WorkerTuning, run_worker

    settings = settings_from_args(args).with_overrides(
        time_regression_tolerance_ms=args.time_regression_tolerance_ms
    )
    try:
        settings.redis_credentials()  # no Redis user without a password
        kafka_preflight(settings.confluent_config())
        verify_copartitioned(settings)
        check_redis(settings)
    except (KafkaAuthError, SecurityConfigError, RedisFunctionsError) as exc:
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
        tick_budget=args.tick_budget,
        max_rules_wait_ms=args.max_rules_wait_ms,
        pareto_interval=args.pareto_interval,
    )
    service = TierstreamService(settings, tuning=tuning)
    if settings.processing_guarantee == "exactly_once":
        service.discard_uncommitted_local_state()
    log.info("settings: %s", settings.redacted())
    run_worker(service, loglevel=args.loglevel)
    return 0


def check_redis(settings: Settings) -> None:
    """Redis holds this build's function library (else ``RedisFunctionsError``: the
    worker does not start), and a warning when the server may lack the 2025 Lua fixes.

    A Redis that cannot be reached now is not a reason to refuse: the worker's writes
    wait for Redis anyway (backpressure), and say so if the library is missing then.
    """
    from redis.exceptions import RedisError

    from streams.redis_functions import server_check
    from streams.redis_sink import connect

    creds = settings.redis_credentials()

    async def run() -> str | None:
        client = connect(settings.redis_url, creds.password, creds.username)
        try:
            _found, warning = await server_check(client, settings.redis_accept_versions)
            return warning
        finally:
            await client.aclose()

    try:
        warning = asyncio.run(run())
    except (RedisError, OSError) as exc:
        print(
            f"tierstream worker: warning: cannot check Redis now ({type(exc).__name__}); "
            "starting anyway, profile writes wait for Redis",
            file=sys.stderr,
        )
        return
    if warning:
        print(f"tierstream worker: warning: {warning}", file=sys.stderr)
