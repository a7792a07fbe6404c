"""Session fixtures for the real Kafka broker and Redis server.

Why real services: the behaviour that matters (transactions, consumer groups,
partitioning by key, Lua scripts in Redis) cannot be trusted to a fake. The
services are started lazily, only when a test asks for them, by the same
scripts developers and CI use (deploy/local/kafka, deploy/local/redis).

Choices worth knowing:
- KAFKA_BOOTSTRAP / REDIS_URL set: those services are used as they are and are
  never started or stopped here.
- Unset: ``deploy/local/<service> start`` runs (idempotent) and the service is
  LEFT RUNNING after the session. A broker takes ~5-10 s to start; keeping it up
  makes re-runs fast, and stopping one that another shell or engineer is using
  would break them. ``make services-down`` (or .ci/run's exit trap) stops them.
- Isolation: every test gets its own topic/group prefix and Redis key prefix,
  so tests never see each other's data and may run in any order, or in
  parallel against one broker.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import pytest
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_DIR = REPO_ROOT / "deploy" / "local"
INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"

#: Generous: a cold start also resolves ~50 MB of jars from Maven Central.
_SERVICE_START_TIMEOUT_S = 600
_TOPIC_READY_TIMEOUT_S = 30.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration so `-m "not integration"` gives a quick run."""
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _start_service(name: str) -> None:
    """Run deploy/local/<name> start; fail (not skip) the dependent tests when it cannot start.

    Skipping would let a broken environment pass CI with nothing tested.
    """
    script = DEPLOY_DIR / name
    try:
        proc = subprocess.run(
            [str(script), "start"],
            capture_output=True,
            text=True,
            timeout=_SERVICE_START_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} start timed out after {exc.timeout}s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"{script} start failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap of a live broker: $KAFKA_BOOTSTRAP, else the local one (started if down)."""
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        return external
    _start_service("kafka")
    return f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a live Redis: $REDIS_URL, else the local one (started if down).

    tierstream's Redis Function library is loaded into it, as the deploy scripts'
    admin step (`tierstream redis install-functions`) does: idempotent, and a library
    of another version loaded by someone else's checkout stays untouched.
    """
    url = os.environ.get("REDIS_URL")
    if not url:
        _start_service("redis")
        url = f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6379')}/0"
    install_redis_functions(url)
    return url


def install_redis_functions(url: str) -> None:
    """``FUNCTION LOAD REPLACE`` of this checkout's library (streams/redis_functions.py)."""
    from streams.redis_functions import library_source

    client = redis.Redis.from_url(url)
    try:
        client.function_load(library_source(), replace=True)
    finally:
        client.close()


@pytest.fixture
def unique_prefix() -> str:
    """A per-test prefix such as "t1a2b3c4d-" for topic names, group ids and transactional ids."""
    return f"t{secrets.token_hex(4)}-"


@pytest.fixture
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A per-test Redis key prefix; every key under it is deleted after the test."""
    prefix = f"tierstream-test:{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        delete_keys_with_prefix(client, prefix)
    finally:
        client.close()


def delete_keys_with_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key starting with `prefix` (SCAN, never KEYS: safe on a shared server).

    Returns how many keys were deleted. The prefix must not contain glob characters.
    """
    if any(ch in prefix for ch in "*?[]\\"):
        raise ValueError(f"prefix must not contain glob characters: {prefix!r}")
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(client.delete(*batch))
            batch.clear()
    if batch:
        deleted += int(client.delete(*batch))
    return deleted


@pytest.fixture
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    """An AdminClient on the test broker."""
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


class MakeTopics(Protocol):
    """Signature of the ``make_topics`` factory fixture (for type hints in tests)."""

    def __call__(
        self,
        names: list[str],
        partitions: int = 4,
        *,
        config: Mapping[str, str] | None = None,
    ) -> None: ...


def _wait_topics_ready(admin: AdminClient, names: list[str], partitions: int) -> None:
    """Block until every topic is in the metadata with a leader for each partition.

    CreateTopics returns once the controller accepted the topic; producing right
    away can still hit UNKNOWN_TOPIC_OR_PART until the broker's metadata catches up.
    """
    deadline = time.monotonic() + _TOPIC_READY_TIMEOUT_S
    pending = set(names)
    while pending:
        md = admin.list_topics(timeout=5)
        for name in list(pending):
            topic = md.topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) == partitions
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                pending.discard(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"topics not ready after {_TOPIC_READY_TIMEOUT_S}s: {sorted(pending)}"
            )
        time.sleep(0.1)


@pytest.fixture
def make_topics(kafka_admin: AdminClient) -> Iterator[MakeTopics]:
    """Factory: create topics (caller applies the prefix), wait until usable; delete at teardown."""
    created: list[str] = []

    def _make(
        names: list[str],
        partitions: int = 4,
        *,
        config: Mapping[str, str] | None = None,
    ) -> None:
        new = [
            NewTopic(n, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
            for n in names
        ]
        futures = kafka_admin.create_topics(new, operation_timeout=30, request_timeout=30)
        for name, fut in futures.items():
            fut.result(timeout=60)
            created.append(name)
        _wait_topics_ready(kafka_admin, names, partitions)

    yield _make

    if created:
        for fut in kafka_admin.delete_topics(created, operation_timeout=30).values():
            # Already gone is fine; teardown must not mask the test's own result.
            with contextlib.suppress(KafkaException):
                fut.result(timeout=60)
