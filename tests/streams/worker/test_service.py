"""The worker's composition root: the configuration and credential rules hold at start-up.

Built without services: a memory store and a Redis URL nobody listens on (constructing
the service connects nothing yet).
"""

from __future__ import annotations

import pytest

from streams.settings import SecurityConfigError, Settings, WebSettings
from streams.worker.service import TierstreamService

_NOWHERE = "redis://127.0.0.1:1/0"


def _settings(**kw: object) -> Settings:
    return Settings(store="memory://", redis_url=_NOWHERE).with_overrides(**kw)


@pytest.mark.parametrize(
    "overrides",
    [
        {"redis_url": "redis://svc@127.0.0.1:1/0"},
        {"redis_username": "svc"},
    ],
    ids=["user-in-url", "REDIS_USERNAME"],
)
def test_a_redis_user_without_password_stops_the_worker(overrides: dict[str, object]) -> None:
    with pytest.raises(SecurityConfigError, match="without a password"):
        TierstreamService(_settings(**overrides))


def test_the_worker_connects_with_the_checked_credentials() -> None:
    from_env = TierstreamService(_settings(redis_username="svc", redis_password="pw"))
    kwargs = from_env.redis.connection_pool.connection_kwargs
    assert (kwargs.get("username"), kwargs.get("password")) == ("svc", "pw")
    from_url = TierstreamService(_settings(redis_url="redis://svc:p%40ss@127.0.0.1:1/0"))
    kwargs = from_url.redis.connection_pool.connection_kwargs
    assert (kwargs.get("username"), kwargs.get("password")) == ("svc", "p@ss")


def test_web_security_comes_from_settings_not_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settings is the one configuration root: the HTTP layer reads ``settings.web``."""
    monkeypatch.setenv("TIERSTREAM_API_AUTH", "maybe")  # would stop a worker reading env
    TierstreamService(_settings())
    with pytest.raises(SecurityConfigError, match="TIERSTREAM_API_AUTH"):
        TierstreamService(_settings(web=WebSettings(api_auth="maybe")))
