"""Access control of the HTTP API, on a real worker over real HTTPS.

The worker runs as a subprocess with a tokens file made by the same code as
``tierstream token create``, a self-signed certificate made with openssl at test time,
the real broker (the audit topic is real) and the real Redis. Every answer is checked
for what it must not leak (the customer id, the profile), and every profile read is
matched with its record on the audit topic.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streams.audit import AUDIT_TOPIC
from streams.http.tokens import add_token, revoke_token
from streams.redis_sink import profile_key
from streams.settings import Settings
from tests.integration.harness import (
    WorkerProcess,
    consume_all,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
AUDIT_SCHEMA = json.loads((REPO / "schemas" / "json" / "audit.schema.json").read_text())


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (openssl, at test time)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def audit_topic(service_settings: Settings) -> str:
    """The audit topic of this deployment: `topics create` (the service_settings fixture)
    makes it with every other topic and deletes it afterwards; wait until the metadata
    shows it (on a busy broker it can lag the creation)."""
    admin = AdminClient(service_settings.confluent_config())
    name = service_settings.topic(AUDIT_TOPIC)
    wait_until(lambda: name in admin.list_topics(timeout=5).topics, 30, "the audit topic")
    return name


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "tokens.json"
    return path, {
        "crm": add_token(path, "crm-frontend", "crm"),
        "ops": add_token(path, "grafana", "ops"),
    }


@pytest.fixture
def secure_env(
    monkeypatch: pytest.MonkeyPatch,
    tls_files: tuple[Path, Path],
    tokens: tuple[Path, dict[str, str]],
) -> None:
    """What an operator sets; WorkerProcess passes the environment on to the worker."""
    cert, key = tls_files
    monkeypatch.setenv("TIERSTREAM_API_AUTH", "required")
    monkeypatch.setenv("TIERSTREAM_API_TOKENS_FILE", str(tokens[0]))
    monkeypatch.setenv("TIERSTREAM_WEB_TLS_CERT", str(cert))
    monkeypatch.setenv("TIERSTREAM_WEB_TLS_KEY", str(key))
    monkeypatch.setenv("TIERSTREAM_METRICS_PUBLIC", "false")
    monkeypatch.setenv("TIERSTREAM_AUDIT_TIMEOUT", "3")
    monkeypatch.setenv("TIERSTREAM_AUDIT_SUMMARY_INTERVAL", "1")


class Client:
    """HTTPS client that verifies the worker's certificate against the test CA."""

    def __init__(self, port: int, cafile: Path) -> None:
        self.base = f"https://127.0.0.1:{port}"
        self.ctx = ssl.create_default_context(cafile=str(cafile))

    def get(self, path: str, token: str | None = None) -> tuple[int, dict[str, str], str]:
        req = urllib.request.Request(self.base + path)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=15, context=self.ctx) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def ready(self) -> bool:
        try:
            status, _h, body = self.get("/health")
        except OSError:
            return False
        return status == 200 and json.loads(body)["assigned_partitions"] > 0


def _start(worker: WorkerProcess, client: Client) -> None:
    worker.start(wait=False)

    def up() -> bool:
        assert worker.proc is not None
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited {worker.proc.returncode}:\n{worker.tail()}")
        return client.ready()

    wait_until(up, 90, "the worker to serve HTTPS /health with partitions")


def _seed_profile(redis_url: str, settings: Settings, customer_id: str, tier: str) -> None:
    r = redis.Redis.from_url(redis_url)
    try:
        key = profile_key(settings.redis_key_prefix, customer_id)
        r.hset(key, mapping={"customer_id": customer_id, "tier": tier, "version": "1"})
    finally:
        r.close()


def _audit_records(settings: Settings) -> list[dict[str, Any]]:
    return consume_all(settings, AUDIT_TOPIC, timeout=20)


def test_tokens_roles_tls_and_audit_on_a_real_worker(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    tls_files: tuple[Path, Path],
    tokens: tuple[Path, dict[str, str]],
    audit_topic: str,
    secure_env: None,
    redis_url: str,
) -> None:
    """Profiles are seeded in Redis: this is about the HTTP layer, not the pipeline."""
    settings = service_settings
    crm, ops = tokens[1]["crm"], tokens[1]["ops"]
    _seed_profile(redis_url, settings, "cA", "affluent")
    worker = make_worker()
    client = Client(settings.web_port, tls_files[0])
    _start(worker, client)

    # Plain HTTP on the HTTPS port gets no answer: nothing is served unencrypted.
    with pytest.raises((OSError, urllib.error.URLError)):
        urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/health", timeout=5)
    # the image's HEALTHCHECK (`tierstream health`) speaks HTTPS when TLS is on; with the
    # wrong certificate as its trust anchor it reports unhealthy
    probe = [sys.executable, "-m", "streams.cli", "health", "--web-port", str(settings.web_port)]
    healthy = subprocess.run(probe, env=os.environ, capture_output=True, text=True, timeout=60)
    assert healthy.returncode == 0, healthy.stderr
    other_ca = {**os.environ, "TIERSTREAM_WEB_TLS_CERT": str(REPO / "README.md")}
    assert subprocess.run(probe, env=other_ca, capture_output=True, timeout=60).returncode == 1
    plain = {k: v for k, v in os.environ.items() if k != "TIERSTREAM_WEB_TLS_CERT"}
    assert subprocess.run(probe, env=plain, capture_output=True, timeout=60).returncode == 1

    # --- /customers: 401 without / with a bad token, 403 wrong role, 200 right role
    status, headers, body = client.get("/customers/cA")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert "cA" not in body and "affluent" not in body
    status, headers, body = client.get("/customers/cA", token="tst_" + "x" * 43)
    assert status == 401 and "WWW-Authenticate" in headers and "cA" not in body
    status, _h, body = client.get("/customers/cA", token=ops)
    assert status == 403 and "cA" not in body and "affluent" not in body
    status, _h, body = client.get("/customers/cA", token=crm)
    assert status == 200 and json.loads(body)["tier"] == "affluent"
    status, _h, body = client.get("/customers/nobody-here", token=crm)
    assert status == 404 and "nobody-here" not in body

    # --- /health: open, details for ops only; a bad token is refused, not ignored
    status, _h, body = client.get("/health")
    assert status == 200 and set(json.loads(body)) == {"status", "assigned_partitions"}
    status, _h, body = client.get("/health", token=crm)
    assert status == 200 and set(json.loads(body)) == {"status", "assigned_partitions"}
    status, _h, body = client.get("/health", token=ops)
    assert status == 200 and {"redis", "batches_processed"} <= set(json.loads(body))
    assert client.get("/health", token="wrong")[0] == 401

    # --- /metrics: TIERSTREAM_METRICS_PUBLIC=false -> ops only
    assert client.get("/metrics")[0] == 401
    assert client.get("/metrics", token=crm)[0] == 403
    status, _h, metrics = client.get("/metrics", token=ops)
    assert status == 200
    assert 'tierstream_audit_records_total{result="ok"} 1.0' in metrics
    assert "cA" not in metrics  # no customer ids in metric labels

    # --- faust's own pages that would expose raw state are switched off
    assert client.get("/table/customer-state/", token=ops)[0] == 404
    assert client.get("/router/", token=ops)[0] == 404

    # --- the audit trail: one record per profile read, keyed by customer; denied
    # attempts summed per client and interval, keyed by the client's address
    def trail() -> list[dict[str, Any]]:
        return _audit_records(settings)

    wait_until(lambda: len(trail()) >= 4, 30, "the denial summaries")
    records = trail()
    for r in records:
        jsonschema.validate(r["value"], AUDIT_SCHEMA)
    reads = [r for r in records if "count" not in r["value"]]
    for r in reads:
        assert r["key"] == r["value"]["customer_id"].encode()
    got = sorted(
        (v["customer_id"], v["result"], v["principal"] or "-", v["role"] or "-")
        for v in (r["value"] for r in reads)
    )
    assert got == [
        ("cA", "ok", "crm-frontend", "crm"),
        ("nobody-here", "not_found", "crm-frontend", "crm"),
    ]
    summaries: dict[tuple[str, str], int] = {}
    for r in records:
        v = r["value"]
        if "count" in v:
            assert r["key"] == b"127.0.0.1" and v["client"] == "127.0.0.1"
            assert v["customer_id"] is None and v["customers"] == 1
            who = (v["principal"] or "-", v["result"])
            summaries[who] = summaries.get(who, 0) + v["count"]
    # no token + bad token (one summary, or two if an interval ended between them);
    # the wrong role named its token
    assert summaries == {("-", "denied"): 2, ("grafana", "denied"): 1}
    # secrets and profiles never reach the worker's log
    log = worker.log_path.read_text(errors="replace")
    assert crm not in log and ops not in log
    assert "nobody-here" not in log  # customer ids only at debug level


def test_revoked_token_stops_working_without_restart(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    tls_files: tuple[Path, Path],
    tokens: tuple[Path, dict[str, str]],
    audit_topic: str,
    secure_env: None,
    redis_url: str,
) -> None:
    """Revocation and the audit guarantee: no audit, no profile (503)."""
    settings = service_settings
    _seed_profile(redis_url, settings, "cZ", "hnw")
    worker = make_worker()
    client = Client(settings.web_port, tls_files[0])
    _start(worker, client)
    crm = tokens[1]["crm"]
    assert client.get("/customers/cZ", token=crm)[0] == 200

    # revoke (what `tierstream token revoke` runs): the next request is refused
    path = tokens[0]
    assert revoke_token(path, "crm-frontend")
    assert client.get("/customers/cZ", token=crm)[0] == 401

    # the audit topic disappears: a read is refused (503), the profile is not served
    new_crm = add_token(path, "crm-2", "crm")
    assert client.get("/customers/cZ", token=new_crm)[0] == 200
    admin = AdminClient(settings.confluent_config())
    admin.delete_topics([audit_topic], operation_timeout=30)[audit_topic].result(timeout=30)
    wait_until(lambda: audit_topic not in admin.list_topics(timeout=5).topics, 30, "topic deletion")
    status, _h, body = client.get("/customers/cZ", token=new_crm)
    assert status == 503 and "audit" in body, body
    assert "hnw" not in body and "cZ" not in body
    assert client.get("/health")[0] == 200  # the worker itself keeps running
    # the topic comes back: reads are served again (and the producer can drain, so the
    # worker stops promptly instead of retrying the refused record until its timeout)
    new = NewTopic(audit_topic, num_partitions=settings.partitions)
    admin.create_topics([new])[audit_topic].result(timeout=30)
    wait_until(lambda: client.get("/customers/cZ", token=new_crm)[0] == 200, 60, "audit to recover")
    assert worker.stop() == 0
