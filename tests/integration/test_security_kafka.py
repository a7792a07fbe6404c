"""SASL/SCRAM and ACLs on a real broker: its own SCRAM broker, never the shared 9092.

A module-scoped fixture starts ``KAFKA_SASL=1 KAFKA_AUTHORIZER=1 deploy/local/kafka``
on free ports in a temporary run directory — SCRAM-SHA-512 credentials for ``admin``
(super user) and ``tierstream`` are made at format time — and wipes it at the end.
The worker then runs end to end as ``tierstream`` with only the ACLs
``streams.kafka_access.kafka_acls`` documents, which proves the set is enough; wrong
credentials must fail within seconds with a message that names the cause.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AdminClient,
)

from state.rules import load_rules
from streams.audit import AUDIT_TOPIC
from streams.kafka_access import KafkaAuthError, kafka_preflight
from streams.settings import Settings
from streams.topics import topic_specs
from tests.conftest import DEPLOY_DIR, REPO_ROOT
from tests.integration.harness import (
    WorkerProcess,
    consume_all,
    free_port,
    produce,
    wait_caught_up,
    wait_until,
)
from tests.integration.oracle import compare_decisions, recompute
from tests.integration.scenario import scripted_bank

OUTPUTS = ("tier-changes", "offers", "alerts")


@dataclass(frozen=True)
class ScramBroker:
    bootstrap: str
    admin_password: str
    user: str
    user_password: str

    def security(self, user: str, password: str) -> dict[str, str]:
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": password,
        }

    def env(self, user: str, password: str) -> dict[str, str]:
        """The variables an operator sets for every tierstream client."""
        return {
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": password,
        }


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScramBroker]:
    port, controller = free_port(), free_port()
    broker = ScramBroker(
        f"127.0.0.1:{port}", secrets.token_urlsafe(18), "tierstream", secrets.token_urlsafe(18)
    )
    env = {
        **os.environ,
        "KAFKA_SASL": "1",
        "KAFKA_AUTHORIZER": "1",
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_SASL_ADMIN_PASSWORD": broker.admin_password,
        "KAFKA_SASL_USERS": f"{broker.user}:{broker.user_password}",
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
        "TIERSTREAM_RUN_DIR": str(tmp_path_factory.mktemp("scram-run")),
    }
    script = str(DEPLOY_DIR / "kafka")
    proc = subprocess.run(
        [script, "start"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    try:
        assert proc.returncode == 0, f"SCRAM broker did not start:\n{proc.stdout}\n{proc.stderr}"
        yield broker
    finally:
        subprocess.run([script, "reset"], env=env, capture_output=True, timeout=120, check=False)


def _settings(broker: ScramBroker, user: str, password: str, tmp_path: Path) -> Settings:
    prefix = f"t{secrets.token_hex(4)}-"
    return Settings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=prefix,
        partitions=2,
        store="memory://",
        app_id=f"{prefix}app",
        web_port=free_port(),
        data_dir=str(tmp_path / "data"),
        kafka_security=broker.security(user, password),
    )


def _cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_worker_end_to_end_through_scram_with_only_the_documented_acls(
    scram_broker: ScramBroker,
    redis_url: str,
    redis_key_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = scram_broker
    as_admin = _settings(b, "admin", b.admin_password, tmp_path)
    settings = as_admin.with_overrides(
        kafka_security=b.security(b.user, b.user_password),
        redis_url=redis_url,
        redis_key_prefix=redis_key_prefix,
    )
    admin = AdminClient(as_admin.confluent_config())

    # topics are made by the administrator, through SASL, with the real CLI
    env = {**b.env("admin", b.admin_password), "TIERSTREAM_TOPIC_PREFIX": settings.topic_prefix}
    env |= {"TIERSTREAM_PARTITIONS": "2", "TIERSTREAM_APP_ID": settings.app_id}
    # one broker: replication 1 for the audit trail only with the development flag
    out = _cli(["topics", "create"], env, timeout=120)
    assert out.returncode == 2 and "--dev-single-replica" in out.stderr, out.stderr
    assert b.admin_password not in out.stderr
    out = _cli(["topics", "create", "--dev-single-replica"], env, timeout=120)
    assert out.returncode == 0, out.stderr
    names = {s.name for s in topic_specs(settings)}
    assert names <= set(admin.list_topics(timeout=10).topics)
    assert settings.topic(AUDIT_TOPIC) in names

    # without ACLs the service user is authenticated but may do nothing
    produce(as_admin, scripted_bank())
    txns = settings.topic("transactions")
    service_admin = AdminClient(settings.confluent_config())
    err = service_admin.list_topics(txns, timeout=10).topics[txns].error
    assert err is not None and err.name() == "TOPIC_AUTHORIZATION_FAILED"
    # the administrator grants exactly the documented set (`topics create --grant-user`,
    # streams.kafka_access.grant_acls; idempotent: the topics exist already)
    out = _cli(["topics", "create", "--dev-single-replica", "--grant-user", b.user], env, 120)
    assert out.returncode == 0, out.stderr
    assert f"ACL bindings to User:{b.user}" in out.stdout
    wait_until(
        lambda: service_admin.list_topics(txns, timeout=5).topics[txns].error is None,
        30,
        "the ACLs to apply",
    )

    # the worker runs as the service user through SASL_PLAINTEXT/SCRAM-SHA-512
    for k, v in b.env(b.user, b.user_password).items():
        monkeypatch.setenv(k, v)
    worker = WorkerProcess(settings, tmp_path / "logs")
    try:
        worker.start()
        # checks read as admin: the service user may only write the outputs
        reader = settings.with_overrides(kafka_security=as_admin.kafka_security)
        wait_caught_up(reader, 90, "the worker to commit all input", worker)
        truth = recompute(reader, load_rules(settings.rules_path))
        assert truth.decisions
        for topic in OUTPUTS:
            got = [r["value"] for r in consume_all(reader, topic)]
            expected = [d.to_record() for d in truth.decisions if d.topic == topic]
            cmp = compare_decisions(expected, got, allow_redelivery=False)
            assert cmp.ok, (topic, cmp)
        assert worker.stop() == 0
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "AUTHORIZATION_FAILED" not in log.upper().replace(" ", "_")
    assert b.user_password not in log and b.admin_password not in log


def test_wrong_credentials_fail_fast_with_a_clear_message(
    scram_broker: ScramBroker, tmp_path: Path
) -> None:
    b = scram_broker
    conf = {"bootstrap.servers": b.bootstrap, **b.security(b.user, "not-the-password")}
    started = time.monotonic()
    with pytest.raises(KafkaAuthError) as err:
        kafka_preflight(conf, timeout_s=20)
    assert "invalid credentials" in str(err.value) and "'tierstream'" in str(err.value)
    assert "not-the-password" not in str(err.value)
    preflight_s = time.monotonic() - started

    # the CLI a user runs: exits non-zero by itself, and says why
    started = time.monotonic()
    out = _cli(["topics", "create"], b.env(b.user, "not-the-password"), timeout=90)
    cli_s = time.monotonic() - started
    assert out.returncode != 0
    assert "invalid credentials" in out.stderr
    assert "not-the-password" not in out.stdout + out.stderr
    out = _cli(["worker"], b.env(b.user, "not-the-password"), timeout=90)
    assert out.returncode != 0 and "invalid credentials" in out.stderr
    assert "not-the-password" not in out.stdout + out.stderr
    print(
        f"wrong credentials: preflight {preflight_s:.1f}s, `topics create` exit after {cli_s:.1f}s"
    )
