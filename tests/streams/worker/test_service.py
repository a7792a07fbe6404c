"""The worker's composition root: the configuration and credential rules hold at start-up.

Built without services: a memory store and a Redis URL nobody listens on (constructing
the service connects nothing yet).
"""

from __future__ import annotations

from pathlib import Path

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


def _future_transaction(minutes: int, now_ms: int) -> bytes:
    from datetime import UTC, datetime

    ts = datetime.fromtimestamp(now_ms / 1000 + minutes * 60, UTC).isoformat()
    return (
        b'{"event_id":"e1","customer_id":"C1","account_id":"A","ts":"' + ts.encode() + b'",'
        b'"type":"deposit","amount":"1.00","currency":"CNY","channel":"atm"}'
    )


def test_the_decoder_takes_the_rules_limits_and_the_skew_flag_wins(tmp_path: Path) -> None:
    from schemas.decoder import DecodeError
    from streams.worker.service import WorkerTuning

    now = 1_790_000_000_000
    ten_minutes_ahead = _future_transaction(10, now)
    rules = tmp_path / "rules.toml"
    rules.write_text("[limits]\nmax_future_skew_ms = 3600000\nmax_key_bytes = 16\n")

    default = TierstreamService(_settings()).processor.decoder
    assert isinstance(default.decode("transactions", ten_minutes_ahead, now), DecodeError)
    assert default.check_key(b"k" * 512) is None and default.check_key(b"k" * 513) is not None

    from_rules = TierstreamService(_settings(rules_path=str(rules))).processor.decoder
    assert not isinstance(from_rules.decode("transactions", ten_minutes_ahead, now), DecodeError)
    error = from_rules.check_key(b"k" * 17)
    assert error is not None and error.limit == "limits.max_key_bytes"

    flag = WorkerTuning(max_future_skew_ms=60_000)
    flagged = TierstreamService(_settings(rules_path=str(rules)), tuning=flag).processor.decoder
    refused = flagged.decode("transactions", ten_minutes_ahead, now)
    assert isinstance(refused, DecodeError) and refused.limit == "limits.max_future_skew_ms"
    assert flagged.check_key(b"k" * 17) is not None  # the other limits still the rules'
