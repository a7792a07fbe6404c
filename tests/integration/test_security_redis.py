"""The service under a least-privilege Redis ACL user, on the real Redis.

The ACL user is made on the shared server with the rules docs/security.md documents
(``streams.redis_sink.redis_acl_rules``: only this test's key prefix, only the commands
the service sends) and deleted afterwards. ``ACL LOG`` is the witness: after the
service ran, the only denials recorded for the user are the ones the test provoked on
purpose, so the documented set is both sufficient and enforced.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from confluent_kafka.admin import AdminClient
from redis.exceptions import NoPermissionError, ResponseError

from state.rules import load_rules
from streams.audit import AUDIT_TOPIC
from streams.concentration import aum_top_share
from streams.http.tokens import hash_token, new_token
from streams.metrics import Metrics
from streams.redis_functions import FUNCTIONS_VERSION, LIBRARY, check_functions
from streams.redis_sink import (
    RedisProfileSink,
    connect,
    profile_key,
    read_profile,
    redis_acl_rules,
)
from streams.settings import Settings
from tests.integration.harness import WorkerProcess, produce, wait_caught_up, wait_until
from tests.integration.oracle import recompute
from tests.integration.scenario import scripted_bank


def _with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}:{parts.port or 6379}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/0", parts.query, ""))


def _denials(admin: redis.Redis, user: str) -> list[dict[bytes, object]]:
    return [
        e for e in admin.execute_command("ACL", "LOG", "128") if e[b"username"] == user.encode()
    ]


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
def acl_user(redis_url: str, redis_key_prefix: str) -> Iterator[tuple[str, str, str]]:
    """(user, password, url) of an ACL user limited to this test's key prefix."""
    admin = redis.Redis.from_url(redis_url)
    user = f"tierstream-test-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(24)
    admin.execute_command(
        "ACL", "SETUSER", user, "reset", "on", f">{password}", *redis_acl_rules(redis_key_prefix)
    )
    try:
        yield user, password, _with_user(redis_url, user, password)
    finally:
        admin.execute_command("ACL", "DELUSER", user)
        admin.close()


def test_sink_works_under_the_acl_user_and_nothing_else_is_allowed(
    redis_url: str, redis_key_prefix: str, acl_user: tuple[str, str, str]
) -> None:
    user, password, url = acl_user
    admin = redis.Redis.from_url(redis_url)
    # a function another library registered: callable by an admin, not by this user
    other_lib = f"tierstream_test_{secrets.token_hex(4)}"
    other_fn = f"{other_lib}_hello"
    admin.function_load(
        f"#!lua name={other_lib}\n"
        f"redis.register_function('{other_fn}', function(keys, args) return 1 end)\n"
    )
    # The credentials parse the way the worker reads them (URL or REDIS_USERNAME/PASSWORD).
    creds = Settings.from_env({"REDIS_URL": url}).redis_credentials()
    assert (creds.username, creds.password) == (user, password)

    async def run() -> None:
        client = connect(url)
        try:
            sink = RedisProfileSink(client, redis_key_prefix, Metrics())
            assert await sink.write({b"c1": {"version": "1", "tier": "mass", "customer_id": "c1"}})
            v2 = {"version": "2", "tier": "hnw", "customer_id": "c1", "aum_cny": "2000000.00"}
            assert await sink.write({b"c1": v2})
            assert await sink.write({b"c1": {"version": "1", "tier": "mass"}}) == 0  # stale
            assert (await read_profile(client, redis_key_prefix, "c1"))["tier"] == "hnw"
            assert await sink.tier_counts() == {"mass": 0, "hnw": 1}
            assert await client.ping()
            # the Pareto gauge's scan step (SCAN and HGET inside FCALL_RO)
            assert await aum_top_share(client, redis_key_prefix) == 1.0
            # the start-up check of the library (one FCALL_RO)
            assert (await check_functions(client)).library_version == FUNCTIONS_VERSION
            # outside the prefix: refused
            with pytest.raises(NoPermissionError):
                await client.hset("tierstream-elsewhere:x", "a", "1")
            # a command the service never sends: refused, even on its own keys; DEL (for
            # the erase function) only under the prefix
            with pytest.raises((NoPermissionError, ResponseError)):
                await client.keys("*")
            with pytest.raises(NoPermissionError):
                await client.delete("tierstream-elsewhere:y")
            with pytest.raises(NoPermissionError):
                await client.hgetall("tierstream-elsewhere:z")
            # erasure through the function: profile gone, tier counts follow, idempotent
            await sink.write({b"c9": {"version": "1", "tier": "mass", "customer_id": "c9"}})
            assert await sink.erase([b"c9", b"never-seen"]) == 1
            assert await sink.erase([b"c9"]) == 0
            assert await read_profile(client, redis_key_prefix, "c9") == {}
            # the upsert function cannot be pointed at a key outside the prefix either
            sink_out = RedisProfileSink(client, "tierstream-elsewhere:", Metrics())
            with pytest.raises((NoPermissionError, ResponseError)):
                await sink_out._write_once({b"c2": {"version": "1", "tier": "mass"}})
            # no Lua of its own: EVAL, EVALSHA, SCRIPT LOAD and FUNCTION LOAD are refused,
            # and so is FCALL of a function that is not one of tierstream's
            with pytest.raises(NoPermissionError):
                await client.eval("return 1", 0)
            with pytest.raises(NoPermissionError):
                await client.evalsha("e0e1f9fabfc9d4800c877a703b823ac0578ff8db", 0)
            with pytest.raises(NoPermissionError):
                await client.script_load("return 1")
            with pytest.raises(NoPermissionError):
                await client.function_load(f"#!lua name={other_lib}\n", replace=True)
            with pytest.raises(NoPermissionError):
                await client.fcall(other_fn, 0)
        finally:
            await client.aclose()

    try:
        asyncio.run(run())
    finally:
        admin.function_delete(other_lib)
    assert admin.exists("tierstream-elsewhere:x") == 0
    assert admin.hget(profile_key(redis_key_prefix, "c1"), "tier") == b"hnw"
    # every denial Redis logged for this user is one provoked above, and they are there
    denied = {e[b"object"] for e in _denials(admin, user)}
    provoked = {b"tierstream-elsewhere:x", b"tierstream-elsewhere:y", b"tierstream-elsewhere:z"}
    provoked |= {b"keys", b"tierstream-elsewhere:customer:c2"}
    provoked |= {b"eval", b"evalsha", b"script|load", b"function|load", b"fcall"}
    assert denied == provoked
    admin.close()


def test_worker_runs_end_to_end_under_the_acl_user(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    acl_user: tuple[str, str, str],
    audit_topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, _password, url = acl_user
    settings = service_settings
    token = new_token()
    monkeypatch.setenv("TIERSTREAM_API_AUTH", "required")
    monkeypatch.setenv("TIERSTREAM_API_TOKENS", f"crm-test:crm:{hash_token(token)}")
    admin = redis.Redis.from_url(redis_url, decode_responses=True)

    produce(settings, scripted_bank())
    worker = make_worker(redis_url=url)
    worker.start()
    wait_caught_up(settings, 90, "the worker to commit all input", worker)

    truth = recompute(settings, load_rules(settings.rules_path))
    assert truth.profiles
    for key, fields in truth.profiles.items():
        assert admin.hgetall(profile_key(settings.redis_key_prefix, key.decode())) == fields
    status, body = worker.get("/health")
    assert status == 200 and body["status"] == "ok"

    # the web layer reads through the same ACL user (HGETALL on the prefix)
    req = urllib.request.Request(
        f"{worker.base_url}/customers/cA", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    # the minimal ACL was enough: Redis recorded no denial for the service's user
    assert _denials(redis.Redis.from_url(redis_url), user) == []
    admin.close()


def test_worker_refuses_a_redis_without_the_library_until_an_admin_installs_it(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    private_redis: tuple[str, Callable[[], None], Callable[[], None]],
) -> None:
    """The worker checks the library at start-up (its user could not load it anyway):
    without it, exit 2 and what to run; ``tierstream redis install-functions`` (as an
    administrator) then lets it start, and the server version is reported."""
    url, _start, _stop = private_redis
    admin = redis.Redis.from_url(url)
    admin.function_flush()  # a Redis as it comes: no library
    user, password = "tierstream-worker", secrets.token_urlsafe(16)
    admin.execute_command(
        "ACL",
        "SETUSER",
        user,
        "reset",
        "on",
        f">{password}",
        *redis_acl_rules(service_settings.redis_key_prefix),
    )
    worker = make_worker(redis_url=_with_user(url, user, password))
    worker.start(wait=False)
    assert worker.wait_exit(60) == 2
    assert "install-functions" in worker.tail() and LIBRARY in worker.tail()

    # the worker's own user cannot install it: FUNCTION LOAD is refused
    env = {**os.environ, "REDIS_URL": _with_user(url, user, password)}
    cli = [sys.executable, "-m", "streams.cli", "redis", "install-functions"]
    refused = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "NoPermissionError" in refused.stderr
    assert password not in refused.stderr + refused.stdout

    # an administrator can (twice: idempotent)
    for _ in range(2):
        done = subprocess.run(
            [*cli, "--redis-url", url], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert f"loaded {LIBRARY} on Redis " in done.stdout
    assert "2025 Lua fixes" in done.stderr  # a 7.0.15 server reports no fix upstream
    env["TIERSTREAM_REDIS_ACCEPT_VERSION"] = admin.info("server")["redis_version"]
    accepted = subprocess.run(
        [*cli, "--redis-url", url], env=env, capture_output=True, text=True, timeout=60
    )
    assert accepted.returncode == 0 and "Lua fixes" not in accepted.stderr

    worker.start()  # now it starts and serves
    assert worker.get("/health")[0] == 200
    # the only denial: the install attempted with the worker's user
    assert [e[b"object"] for e in _denials(admin, user)] == [b"function|load"]
    admin.close()
