"""Reset a previous demo run: delete its topics, consumer group and Redis keys.

    python -m streams.tools.demo_reset [--bootstrap B] [--topic-prefix P]

Why: the simulator replays the same synthetic bank from the same start time, so on
top of an old run's state every event would be a duplicate or late. This deletes, so
it refuses anything that may not be a demo: only a deployment whose topic prefix and
Redis prefix both contain ``demo`` is touched. deploy/demo runs it before each run
(unless ``--keep``). Kept apart from the live view, which only ever reads.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from confluent_kafka import KafkaException

from streams.settings import Settings


class UnsafeReset(RuntimeError):
    """Refusing to delete topics or keys that may not belong to a demo."""


def reset_demo(settings: Settings, timeout: float = 60.0) -> list[str]:
    """Delete a previous demo run's topics, consumer group and Redis keys.

    Why: the simulator replays the same synthetic bank from the same start time, so
    on top of an old run's state every event would be a duplicate or late. Only a
    deployment whose topic prefix and Redis prefix both contain ``demo`` is touched,
    so a misdirected demo can never wipe a real deployment. Returns what it deleted.
    """
    import redis

    from streams.topics import topic_specs

    prefixes = (settings.topic_prefix, settings.redis_key_prefix)
    if not all("demo" in p.lower() for p in prefixes):
        raise UnsafeReset(
            f"topic prefix {settings.topic_prefix!r} and Redis prefix "
            f"{settings.redis_key_prefix!r} must both contain 'demo' to be reset"
        )
    if any(ch in settings.redis_key_prefix for ch in "*?[]\\"):
        raise UnsafeReset(f"Redis prefix has glob characters: {settings.redis_key_prefix!r}")
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.confluent_config())
    wanted = {s.name for s in topic_specs(settings)}
    existing = sorted(wanted & set(admin.list_topics(timeout=10).topics))
    if existing:
        for fut in admin.delete_topics(existing, operation_timeout=30).values():
            with contextlib.suppress(KafkaException):  # already being deleted
                fut.result()
    with contextlib.suppress(KafkaException):  # no such group: nothing to delete
        for fut in admin.delete_consumer_groups([settings.app_id]).values():
            fut.result()
    deadline = time.monotonic() + timeout
    while set(existing) & set(admin.list_topics(timeout=10).topics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo topics still present after {timeout:.0f}s: {existing}")
        time.sleep(0.5)
    client = redis.Redis.from_url(settings.redis_url, password=settings.redis_password)
    try:
        keys = list(client.scan_iter(match=f"{settings.redis_key_prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
    finally:
        client.close()
    return [*existing, f"{len(keys)} Redis keys under {settings.redis_key_prefix}"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streams.tools.demo_reset", description=__doc__)
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    p.add_argument("--topic-prefix", help="topic name prefix (env TIERSTREAM_TOPIC_PREFIX)")
    args = p.parse_args(argv)
    settings = Settings.from_env().with_overrides(
        kafka_bootstrap=args.bootstrap, topic_prefix=args.topic_prefix
    )
    try:
        gone = reset_demo(settings)
    except (UnsafeReset, TimeoutError, KafkaException) as exc:
        print(f"demo reset: refused or failed: {exc}", file=sys.stderr)
        return 2
    print("demo: reset " + ", ".join(gone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
