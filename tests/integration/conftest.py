"""Fixtures for running the tierstream service itself against the real services."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from streams.settings import Settings
from streams.topics import create_topics, topic_specs
from tests.conftest import install_redis_functions
from tests.integration.harness import WorkerProcess, free_port, wait_until


@pytest.fixture
def service_settings(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    redis_url: str,
    unique_prefix: str,
    redis_key_prefix: str,
    tmp_path: Path,
) -> Iterator[Settings]:
    """Settings for one isolated deployment: own topics, group, Redis keys and port.

    Topics are created the way users create them (`create_topics`, 4 partitions to
    keep rebalances quick, or what a ``@pytest.mark.partitions(n)`` asks for) and
    deleted afterwards.
    """
    marker = request.node.get_closest_marker("partitions")
    partitions = int(marker.args[0]) if marker is not None else 4
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        redis_key_prefix=redis_key_prefix,
        topic_prefix=unique_prefix,
        partitions=partitions,
        store="memory://",
        app_id=f"{unique_prefix}app",
        web_port=free_port(),
        data_dir=str(tmp_path / "data"),
        tick_interval=0,  # tests that need ticks produce them (or turn the clock on)
        dev_single_replica=True,  # one local broker
    )
    create_topics(settings)
    yield settings
    if os.environ.get("TIERSTREAM_KEEP_TOPICS"):  # debugging: inspect a failed run's topics
        return
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    names = [s.name for s in topic_specs(settings)]
    for fut in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # already gone: nothing to clean
            fut.result()


@pytest.fixture
def make_worker(
    service_settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: ``make_worker(name=..., **settings overrides)``; all are stopped at the end."""
    workers: list[WorkerProcess] = []

    def _make(name: str = "worker", **overrides: object) -> WorkerProcess:
        data_dir = tmp_path / "data" / name
        data_dir.mkdir(parents=True, exist_ok=True)
        overrides.setdefault("data_dir", str(data_dir))
        s = service_settings.with_overrides(**overrides)
        w = WorkerProcess(s, tmp_path / "logs", name=name)
        workers.append(w)
        return w

    yield _make
    for w in workers:
        w.stop()


@pytest.fixture
def private_redis(
    redis_url: str, tmp_path: Path
) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A Redis on its own port that the test may stop and restart empty.

    Each start loads the Function library, as an operator's deploy step does after a
    Redis comes back without its data (docs/operations.md).
    """
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(tmp_path),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        wait_until(lambda: _redis_pings(port), 10, "private redis")
        install_redis_functions(f"redis://127.0.0.1:{port}/0")

    def stop() -> None:
        p = procs[-1]
        p.kill()
        p.wait(10)

    start()
    yield f"redis://127.0.0.1:{port}/0", start, stop
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def _redis_pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False
