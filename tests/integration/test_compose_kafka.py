"""The compose Kafka's start script, run here without Docker.

There is no Docker engine where tierstream is tested, so compose is checked as files
(tests/deploy/). Its Kafka is the one piece with logic of its own
(deploy/kafka/start-scram.sh: the KRaft config, SCRAM users at format time, the
authorizer), so it is run for real: the image's two bin scripts are replaced by thin
wrappers around the same Kafka jars deploy/local/kafka uses, on free ports. Then the
administrator creates the topics and grants the worker user its ACLs with the real CLI,
the worker user is refused what it was not granted, and a client without credentials
gets nowhere.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.integration.harness import REPO_ROOT, free_port, wait_until

KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "3.9.2")
CACHE = Path(os.environ.get("TIERSTREAM_CACHE", Path.home() / ".cache" / "tierstream"))
LIBS = CACHE / f"kafka-{KAFKA_VERSION}" / "libs"
LOG4J = REPO_ROOT / "deploy" / "local" / "log4j.properties"


def _shims(home: Path, logs: Path) -> None:
    """bin/kafka-storage.sh and bin/kafka-server-start.sh as the apache/kafka image has
    them, running the cached jars."""
    java = f'java -cp "{LIBS}/*" -Dlog4j.configuration=file:{LOG4J} -Dkafka.logs.dir={logs}'
    (home / "bin").mkdir(parents=True)
    for name, main in (
        ("kafka-storage.sh", "kafka.tools.StorageTool"),
        ("kafka-server-start.sh", "-Xmx512m kafka.Kafka"),
    ):
        script = home / "bin" / name
        script.write_text(f'#!/usr/bin/env bash\nexec {java} {main} "$@"\n')
        script.chmod(0o755)


@pytest.fixture
def compose_kafka(tmp_path: Path, kafka_bootstrap: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(bootstrap of the HOST listener, the passwords) of a broker run by the script.

    Depends on ``kafka_bootstrap`` only so the jars are fetched (deploy/local/kafka)."""
    assert (LIBS / ".complete").exists(), f"no Kafka jars in {LIBS}"
    home, logs = tmp_path / "kafka-home", tmp_path / "logs"
    logs.mkdir()
    _shims(home, logs)
    internal, host, controller = free_port(), free_port(), free_port()
    passwords = {
        "KAFKA_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "KAFKA_WORKER_PASSWORD": secrets.token_urlsafe(18),
    }
    env = {
        **os.environ,
        **passwords,
        "KAFKA_HOME": str(home),
        "KAFKA_DATA_DIR": str(tmp_path / "data"),
        "KAFKA_CONF": str(tmp_path / "server.properties"),
        "KAFKA_ADMIN_CONF": str(tmp_path / "admin.properties"),
        "KAFKA_INTERNAL_PORT": str(internal),
        "KAFKA_HOST_PORT": str(host),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_ADVERTISED_INTERNAL": f"127.0.0.1:{internal}",
        "KAFKA_ADVERTISED_HOST": f"127.0.0.1:{host}",
    }
    out = (tmp_path / "broker.out").open("wb")
    proc = subprocess.Popen(
        ["bash", str(REPO_ROOT / "deploy" / "kafka" / "start-scram.sh")],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    bootstrap = f"127.0.0.1:{host}"
    try:
        admin = AdminClient(_client(bootstrap, "admin", passwords["KAFKA_ADMIN_PASSWORD"]))

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "broker.out").read_text()[-3000:]
            try:
                admin.list_topics(timeout=2)
                return True
            except KafkaException:
                return False

        wait_until(up, 120, "the compose Kafka to answer")
        yield bootstrap, passwords
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        out.close()


def _client(bootstrap: str, user: str, password: str) -> dict[str, str]:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
    }


def test_the_compose_kafka_speaks_scram_and_enforces_the_granted_acls(
    compose_kafka: tuple[str, dict[str, str]],
) -> None:
    bootstrap, passwords = compose_kafka
    prefix = f"c{secrets.token_hex(3)}-"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "admin",
        "KAFKA_SASL_PASSWORD": passwords["KAFKA_ADMIN_PASSWORD"],
        "TIERSTREAM_TOPIC_PREFIX": prefix,
        "TIERSTREAM_PARTITIONS": "2",
    }
    # what compose's `topics` service runs
    cli = [sys.executable, "-m", "streams.cli", "topics", "create"]
    done = subprocess.run(
        [*cli, "--dev-single-replica", "--grant-user", "tierstream"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ACL bindings to User:tierstream" in done.stdout

    worker = AdminClient(_client(bootstrap, "tierstream", passwords["KAFKA_WORKER_PASSWORD"]))
    txns = f"{prefix}transactions"
    wait_until(  # granted: DESCRIBE on its inputs (ACLs take a moment to apply)
        lambda: worker.list_topics(txns, timeout=5).topics[txns].error is None,
        30,
        "the granted ACLs to apply",
    )
    fut = worker.create_topics([NewTopic(f"{prefix}not-granted", num_partitions=1)])
    with pytest.raises(KafkaException, match="AUTHORIZATION"):
        next(iter(fut.values())).result(timeout=30)

    # a wrong password is refused; there is no listener without authentication
    wrong = AdminClient(_client(bootstrap, "tierstream", "not-the-password"))
    with pytest.raises(KafkaException):
        wrong.list_topics(timeout=5)
    plain = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000})
    with pytest.raises(KafkaException):
        plain.list_topics(timeout=5)
