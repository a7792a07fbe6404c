"""Static checks of the deploy files: no Docker engine runs here, so the compose file,
the Dockerfile, the Prometheus rules and the Grafana dashboard are checked as files.

What would break silently otherwise: an unpinned image that changes under a user, an
environment variable the compose file sets but the service never reads (a typo is a
setting that does nothing), a variable the service reads that nobody documented, and
a dashboard panel or alert on a metric the service does not export (an empty graph, an
alert that can never fire).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from streams.metrics import Metrics
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROM_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "tierstream.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

#: Variables in the Dockerfile that pip, uv, the shell and Python read, not the service.
_RUNTIME_ENV = {
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PYTHONUNBUFFERED",
    "UV_PROJECT_ENVIRONMENT",
    "UV_COMPILE_BYTECODE",
    "UV_LINK_MODE",
    "UV_NO_CACHE",
    "TIERSTREAM_CACHE",
    "PATH",
}
#: Series Prometheus makes itself.
_PROMETHEUS_OWN = {"up"}


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


class _Recorder(dict[str, str]):
    """An empty environment that remembers every variable asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)


def service_env_vars() -> set[str]:
    """Every variable ``Settings.from_env`` reads, found by running it."""
    rec = _Recorder()
    Settings.from_env(rec)
    assert len(rec.asked) > 10, rec.asked
    return rec.asked


def _image_ok(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and any(c.isdigit() for c in tag)


# -- compose and Dockerfile ----------------------------------------------------------


def test_compose_has_every_service_and_a_scalable_worker() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "worker", "simulator", "prometheus", "grafana"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    script = (DEPLOY / "kafka" / "start-scram.sh").read_text()  # the KRaft config it writes
    assert "process.roles=broker,controller" in script
    worker = services["worker"]
    # --scale worker=3 needs: no fixed name, no fixed host port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (COMPOSE.parent / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()
    # Every bind-mounted file exists next to the compose file.
    for svc in services.values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (COMPOSE.parent / src).exists(), f"missing mount source {src}"


def test_every_image_tag_is_pinned() -> None:
    images = [s["image"] for s in _compose()["services"].values() if "image" in s]
    images += re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.M)
    assert len(images) >= 7
    unpinned = [i for i in images if not _image_ok(i)]
    assert not unpinned, f"unpinned images: {unpinned}"
    assert not _image_ok("redis") and not _image_ok("redis:latest")  # the check itself works


def test_every_variable_the_service_reads_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(v for v in service_env_vars() if not re.search(rf"\b{v}\b", readme))
    assert not missing, f"read by streams/settings.py but not in README: {missing}"


def test_every_variable_the_deploy_files_set_is_read_by_the_service() -> None:
    read = service_env_vars()
    offenders: list[str] = []
    for name, svc in _compose()["services"].items():
        if "build" not in svc:  # third-party images have their own variables
            continue
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form for environment"
        offenders += [f"{name}: {k}" for k in env if k not in read]
        if any(k.startswith("KAFKA_") for k in env):
            assert env.get("KAFKA_BOOTSTRAP") == "kafka:9092", name
    docker_env = re.findall(r"\b([A-Z][A-Z0-9_]+)=", DOCKERFILE.read_text())
    offenders += [f"Dockerfile: {k}" for k in docker_env if k not in read | _RUNTIME_ENV]
    assert docker_env, "the Dockerfile sets no variable: the parser is broken"
    assert not offenders, f"set but never read by streams/settings.py: {offenders}"


# -- compose and image: locked down (docs/security.md) ------------------------------------

_SECRET = re.compile(r"^\$\{([A-Z_]+):\?[^}]+\}$")


def _required_secret(value: str) -> str:
    """The variable a value is taken from; it must be required (``${X:?...}``): no
    default password anywhere."""
    m = _SECRET.match(value)
    assert m, f"{value!r} is not a required variable (${{NAME:?message}})"
    return m.group(1)


def test_every_published_port_is_on_loopback_only() -> None:
    published = 0
    for name, svc in _compose()["services"].items():
        for port in svc.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port}"
            published += 1
    assert published >= 4  # kafka, redis, prometheus, grafana


def test_redis_runs_the_worker_acl_user_with_passwords_from_the_environment() -> None:
    from streams.redis_functions import lua_fixes_missing
    from streams.redis_sink import redis_acl_rules

    redis_svc = _compose()["services"]["redis"]
    tag = redis_svc["image"].split(":")[1].split("-")[0]
    assert lua_fixes_missing(tag) is None, f"redis:{tag} lacks the 2025 Lua fixes"
    cmd: list[str] = redis_svc["command"]
    users: dict[str, list[str]] = {}
    for i, arg in enumerate(cmd):
        if arg == "--user":
            rest = cmd[i + 1 :]
            end = next((j for j, a in enumerate(rest) if a.startswith("--")), len(rest))
            users[rest[0]] = rest[1:end]
    assert set(users) == {"default", "tierstream"}
    worker = users["tierstream"]
    assert worker[0] == "on" and worker[1].startswith(">")
    assert _required_secret(worker[1][1:]) == "REDIS_WORKER_PASSWORD"
    assert worker[2:] == redis_acl_rules("tierstream:")  # exactly what the code needs
    admin = users["default"]
    assert admin[0] == "on" and _required_secret(admin[1][1:]) == "REDIS_ADMIN_PASSWORD"
    assert _required_secret(redis_svc["environment"]["REDISCLI_AUTH"]) == "REDIS_ADMIN_PASSWORD"
    services = _compose()["services"]
    env = services["worker"]["environment"]
    assert env["REDIS_USERNAME"] == "tierstream"
    assert _required_secret(env["REDIS_PASSWORD"]) == "REDIS_WORKER_PASSWORD"
    functions = services["redis-functions"]
    assert functions["command"] == ["redis", "install-functions"]
    assert functions["environment"]["REDIS_USERNAME"] == "default"
    assert services["worker"]["depends_on"]["redis-functions"] == {
        "condition": "service_completed_successfully"
    }


def test_kafka_speaks_only_scram_with_acls_and_every_client_authenticates() -> None:
    services = _compose()["services"]
    kafka = services["kafka"]
    script_mount = next(v for v in kafka["volumes"] if "start-scram.sh" in v)
    script = (COMPOSE.parent / script_mount.split(":")[0]).read_text()
    assert kafka["entrypoint"][-1] == script_mount.split(":")[1]
    for needle in (
        "listener.security.protocol.map=INTERNAL:SASL_PLAINTEXT,HOST:SASL_PLAINTEXT,"
        "CONTROLLER:PLAINTEXT",
        "CONTROLLER://localhost:",  # the PLAINTEXT controller on the container's loopback
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        '--add-scram "SCRAM-SHA-512=[name=tierstream,password=$KAFKA_WORKER_PASSWORD]"',
    ):
        assert needle in script, needle
    assert "PLAINTEXT://:" not in script  # no unauthenticated client listener
    for var in ("KAFKA_ADMIN_PASSWORD", "KAFKA_WORKER_PASSWORD"):
        assert _required_secret(kafka["environment"][var]) == var
    users = {}
    for name, svc in services.items():
        env = svc.get("environment", {})
        if "build" in svc and "KAFKA_BOOTSTRAP" in env:
            assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT", name
            assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
            users[name] = (env["KAFKA_SASL_USERNAME"], _required_secret(env["KAFKA_SASL_PASSWORD"]))
    assert users["worker"] == ("tierstream", "KAFKA_WORKER_PASSWORD")
    assert users["topics"] == ("admin", "KAFKA_ADMIN_PASSWORD")
    assert "--grant-user" in services["topics"]["command"]


def test_grafana_has_no_default_credentials_and_no_anonymous_access() -> None:
    env = _compose()["services"]["grafana"]["environment"]
    assert _required_secret(env["GF_SECURITY_ADMIN_PASSWORD"]) == "GRAFANA_ADMIN_PASSWORD"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env


def test_every_secret_compose_asks_for_is_listed_in_the_env_example() -> None:
    text = COMPOSE.read_text()
    asked = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert not re.findall(r"\$\{[A-Z_]*PASSWORD[A-Z_]*:-", text), "a password with a default"
    example = (DEPLOY / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", example, flags=re.M))
    assert asked and asked <= listed, asked - listed


def test_the_image_health_check_works_with_tls() -> None:
    """`tierstream health` (HTTPS when TIERSTREAM_WEB_TLS_CERT is set); it used to be a
    fixed http:// URL, which a TLS worker never answers. The command itself runs against
    a real TLS worker in tests/integration/test_security_http.py."""
    text = DOCKERFILE.read_text()
    [check] = re.findall(r"^HEALTHCHECK .*\n\s+CMD (.*)$", text, flags=re.M)
    assert json.loads(check) == ["tierstream", "health", "--timeout", "4"]
    assert "http://" not in check


# -- Prometheus ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool from Debian's prometheus package (installed by deploy/local/prometheus)."""
    path = shutil.which("promtool")
    if path is None:
        subprocess.run([str(DEPLOY / "local" / "prometheus"), "install"], check=True, timeout=900)
        path = shutil.which("promtool")
    assert path is not None, "promtool missing after deploy/local/prometheus install"
    return path


def _promtool(promtool: str, *args: str) -> str:
    proc = subprocess.run(
        [promtool, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"promtool {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_promtool_accepts_config_and_rules(promtool: str) -> None:
    out = _promtool(promtool, "check", "config", "prometheus.yml")
    assert "SUCCESS" in out
    out = _promtool(promtool, "check", "rules", "alerts.yml")
    assert "SUCCESS: 18 rules found" in out  # 13 alerts, 5 recording rules (offer conversion)


def test_alert_rules_unit_tests_pass(promtool: str) -> None:
    out = _promtool(promtool, "test", "rules", "alerts_test.yml")
    assert "SUCCESS" in out


def test_every_required_alert_exists_and_is_unit_tested() -> None:
    rules = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    required = {
        "TierstreamWorkerDown",
        "TierstreamConsumerLagGrowing",
        "TierstreamDeadLetterRate",
        "TierstreamNoInput",
        "TierstreamRedisWriteErrors",
        "TierstreamRedisBacklog",
        "TierstreamHighValueDowngradeSpike",
        "TierstreamOfferConversionLow",
        "TierstreamInternalDeadLetters",  # issue 18: a record raised (a bug)
        "TierstreamInputOutOfOrder",  # issue 18: the cross-topic order contract broken
        "TierstreamRulesRefused",  # issue 21: a rules version the workers refused
        "TierstreamBulkProfileReads",
    }
    assert required <= names
    tests = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text())
    fired = {
        case["alertname"]
        for t in tests["tests"]
        for case in t.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert fired == names, f"alerts without a firing unit test: {names - fired}"


# -- metrics used vs exported ----------------------------------------------------------


def exported_series() -> set[str]:
    """Every series name the worker's Metrics() can export (from its registry, with the
    rules gate's metrics, which the worker registers there too)."""
    from streams.worker.rules_gate import RulesMetrics

    names: set[str] = set()
    metrics = Metrics()
    RulesMetrics(metrics)
    for family in metrics.registry.collect():
        assert isinstance(family, Metric)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def _exprs() -> dict[str, list[str]]:
    rules = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    dash = json.loads(DASHBOARD.read_text())
    panel_exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", []) if t.get("expr")]
    return {
        "alerts.yml": [r["expr"] for g in rules["groups"] for r in g["rules"]],
        "tierstream.json": panel_exprs,
    }


def test_every_metric_in_dashboard_and_rules_is_exported() -> None:
    exported = exported_series()
    assert "tierstream_events_consumed_total" in exported
    used_anywhere: set[str] = set()
    for source, exprs in _exprs().items():
        assert exprs, f"no expressions found in {source}"
        for expr in exprs:
            # Drop label matchers and label lists: only metric names remain to check.
            bare = re.sub(
                r"\{[^}]*\}|\((?:le|tier|kind|topic|result|reason|severity|from_tier|"
                r"to_tier|partition|principal)(?:,\s*\w+)*\)",
                " ",
                expr,
            )
            for name in re.findall(r"\btierstream_[a-z0-9_]+", bare):
                used_anywhere.add(name)
                assert name in exported, f"{source}: {name} is not exported by streams/metrics.py"
            for name in re.findall(r"(?<![\w{])up(?=\{|\b)", bare):
                assert name in _PROMETHEUS_OWN
    assert "tierstream_aum_top20_share" in used_anywhere
    assert "tierstream_contribution_top20_share" in used_anywhere


def test_dashboard_covers_the_issue_and_uses_the_provisioned_datasource() -> None:
    dash = json.loads(DASHBOARD.read_text())
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for p in panels:
        assert p["datasource"]["uid"] == uid, p["title"]
    text = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in (
        "tierstream_events_consumed_total",  # throughput
        "tierstream_event_to_output_latency_seconds_bucket",  # latency
        "tierstream_customers",  # tier distribution
        "tierstream_tier_changes_total",  # tier-change flow
        "tierstream_offers_total",
        "tierstream_alerts_total",
        "tierstream_dead_letters_total",
        "tierstream_redis_backlog_profiles",
        "tierstream_consumer_lag_messages",
        "tierstream_offer_responses_total",  # offer conversion and declines (issue 23)
        "tierstream_contribution_top20_share",  # contribution's concentration (issue 22)
        "tierstream_contribution_cny",  # contribution by tier
    ):
        assert metric in text, f"dashboard has no panel on {metric}"


def test_the_dashboards_moved_down_query_is_the_one_promtool_tests() -> None:
    """The share-that-moved-down panel (issue 23) has a promql_expr_test in
    alerts_test.yml; the two texts must stay the same query."""
    dash = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in dash["panels"] if p["title"].startswith("Moved down in the last 30")]
    tests = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text())
    tested = {case["expr"] for t in tests["tests"] for case in t.get("promql_expr_test", [])}
    assert panel["targets"][0]["expr"] in tested


def test_prometheus_keeps_the_30_days_the_dashboard_looks_back() -> None:
    command = _compose()["services"]["prometheus"]["command"]
    (flag,) = [c for c in command if c.startswith("--storage.tsdb.retention.time=")]
    assert int(flag.split("=")[1].removesuffix("d")) >= 30
