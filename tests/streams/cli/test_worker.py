"""``tierstream worker`` refuses a bad configuration before it touches Kafka or Redis."""

from __future__ import annotations

import pytest

from streams.cli import main


def test_a_redis_user_without_password_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    # no broker at this address: the check must come first, or this would wait for it
    rc = main(["worker", "--bootstrap", "127.0.0.1:1", "--redis-url", "redis://svc@127.0.0.1:1/0"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "Redis user given without a password" in err
