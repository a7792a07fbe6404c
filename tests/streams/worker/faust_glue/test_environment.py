"""faust takes its settings only from tierstream's configuration (issue 18): with every
environment variable faust reads set to something else, the worker's app and faust
Worker are exactly what tierstream's settings say.

Built without services, as tests/streams/worker/test_service.py does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from faust.types.settings import Settings as FaustSettings

from streams.settings import Settings
from streams.worker.faust_glue.environment import faust_variables, scrub_faust_environment
from streams.worker.service import TierstreamService

ROOT = Path(__file__).resolve().parents[4]
_NOWHERE = "redis://127.0.0.1:1/0"

#: What a stray environment would change, if faust read it (each a real hazard).
HOSTILE = {
    "PRODUCER_ACKS": "0",  # voids acks=all, which the audit trail relies on
    "APP_DEBUG": "true",  # mounts faust's stats pages
    "APP_WEB_STATS_ENABLED": "true",
    "APP_WEB_TABLES_ENABLED": "true",
    "APP_WEB_ROUTER_ENABLED": "true",
    "APP_WEB_GRAPH_ENABLED": "true",
    "PROCESSING_GUARANTEE": "exactly_once",
    "BROKER_URL": "kafka://elsewhere:9092",
    "STORE": "memory://",
    "APP_STORE": "memory://",
    "WEB_PORT": "1",
    "WEB_BIND": "0.0.0.0",
    "WEB_HOST": "elsewhere",
    "TOPIC_PARTITIONS": "99",
    "TOPIC_REPLICATION_FACTOR": "3",
    "TABLE_STANDBY_REPLICAS": "5",
    "BROKER_SESSION_TIMEOUT": "300",
    "CONSUMER_AUTO_OFFSET_RESET": "latest",
    "PRODUCER_LINGER_MS": "900",
    "APP_DATADIR": "/tmp/elsewhere",
    "APP_ENV_PREFIX": "",
}


#: A value of each kind of faust setting, for the variables not named above.
_BY_KIND = {
    "Path": "/tmp/elsewhere",
    "Bool": "true",
    "Str": "elsewhere",
    "Timezone": "Asia/Shanghai",
    "Int": "7",
    "_Symbol": "faust.agents.replies:ReplyConsumer",
    "Seconds": "7.5",
    "BrokerList": "kafka://elsewhere:9092",
    "UnsignedInt": "7",
    "Codec": "raw",
    "EnumParam": "exactly_once",
    "URL": "memory://",
    "Port": "1",
    "Severity": "ERROR",
}


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        store="rocksdb://",
        redis_url=_NOWHERE,
        web_port=6123,
        data_dir=str(tmp_path / "data"),
        partitions=6,
    )


def _effective(conf: Any) -> dict[str, str]:
    """Every setting faust reads from the environment, as faust sees it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # producer_linger_ms is deprecated
        return {
            name: repr(getattr(conf, name))
            for name, param in FaustSettings.SETTINGS.items()
            if param.env_name
        }


def test_the_app_reads_no_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean = _effective(TierstreamService(_settings(tmp_path)).app.conf)
    # every variable faust's Settings know, set: the headline ones to what a stray
    # environment would hold, the rest to a value of the right kind
    params = [p for p in FaustSettings.SETTINGS.values() if p.env_name]
    names = {p.env_name for p in params}
    assert {"PRODUCER_ACKS", "APP_DEBUG", "PROCESSING_GUARANTEE", "BROKER_URL"} <= names
    assert len(names) >= 70
    for p in params:
        assert p.env_name is not None
        if p.env_name == "BROKER_CREDENTIALS":  # faust cannot parse it from text at all
            continue
        monkeypatch.setenv(p.env_name, HOSTILE.get(p.env_name, _BY_KIND[type(p).__name__]))
    conf = TierstreamService(_settings(tmp_path)).app.conf
    assert conf.producer_acks == -1
    assert conf.debug is False
    assert not (conf.web_enabled and conf.web_stats_enabled and conf.debug)
    assert conf.processing_guarantee.value == "at_least_once"
    assert conf.web_port == 6123 and conf.web_bind == "127.0.0.1"
    assert conf.topic_partitions == 6
    assert [str(u) for u in conf.broker] == ["kafka://127.0.0.1:9092"]
    assert str(conf.store) == "rocksdb:"
    assert _effective(conf) == clean
    assert conf.env == {}


def test_faust_variables_are_scrubbed_before_faust_is_imported(tmp_path: Path) -> None:
    """The ``FAUST_*``/``F_*`` variables faust reads at import time (and mode's DEVLOG):
    scrubbed first, the app and the Worker are tierstream's. In a fresh interpreter,
    since this one imported faust long ago."""
    script = f"""
import json, sys
from streams.worker.faust_glue.environment import scrub_faust_environment
assert "faust" not in sys.modules
removed = scrub_faust_environment()
from faust.types import _env
from streams.settings import Settings
from streams.worker.service import TierstreamService, faust_worker
service = TierstreamService(Settings(store="memory://", redis_url="{_NOWHERE}",
                                     web_port=6124, data_dir={str(tmp_path / "d")!r}))
worker = faust_worker(service)
conf = service.app.conf
policy = type(__import__("asyncio").get_event_loop_policy())
print(json.dumps({{"removed": removed, "debug": worker.debug, "env_debug": _env.DEBUG,
    "transport": str(conf.web_transport), "port": conf.web_port, "bind": conf.web_bind,
    "datadir": str(conf.datadir), "loop": str(policy)}}))
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "FAUST_DEBUG": "1",
        "F_DEBUG": "1",
        "FAUST_WEB_TRANSPORT": "unix:///tmp/tierstream-hijack.sock",
        "F_WEB_PORT": "1",
        "F_WEB_BIND": "0.0.0.0",
        "FAUST_DATADIR": "/tmp/elsewhere",
        "FAUST_LOOP": "eventlet",  # not installed: importing faust would fail
        "FAUST_BLOCKING_TIMEOUT": "0.001",
        "F_STRICT": "1",
        "DEVLOG": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(got.pop("removed")) == sorted(k for k in env if k not in ("PATH", "PYTHONPATH"))
    assert got["debug"] is False and got["env_debug"] is False
    assert got["transport"] == "tcp:"
    assert (got["port"], got["bind"]) == (6124, "127.0.0.1")
    assert got["datadir"].endswith("/d")
    assert "eventlet" not in got["loop"].lower()


def test_the_worker_command_scrubs_and_says_so() -> None:
    """``tierstream worker`` scrubs before it imports faust, and names what it ignored
    (here it then stops at the Redis credential check, before touching any service)."""
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--redis-url", "redis://svc@127.0.0.1:1/0"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "FAUST_LOOP": "eventlet"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 2, out.stderr
    assert "ignored faust's own environment variables: FAUST_LOOP" in out.stderr


def test_scrub_names_only_faust_variables() -> None:
    env = {"FAUST_X": "1", "F_Y": "2", "DEVLOG": "", "TIERSTREAM_APP_ID": "a", "FOO": "b"}
    assert faust_variables(env) == ["DEVLOG", "FAUST_X", "F_Y"]
    assert scrub_faust_environment(env) == ["DEVLOG", "FAUST_X", "F_Y"]
    assert env == {"TIERSTREAM_APP_ID": "a", "FOO": "b"}
