"""The HTTP API's security settings: read by Settings, checked by WebSecurity (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.http.access import WebSecurity
from streams.http.tokens import hash_token, new_token
from streams.settings import SecurityConfigError, Settings


def _web(env: dict[str, str]) -> WebSecurity:
    """The web security a worker started with ``env`` checks (read by Settings.from_env)."""
    return WebSecurity.from_settings(Settings.from_env(env).web)


def test_web_security_defaults_fail_closed() -> None:
    cfg = _web({})
    assert cfg.auth_required and cfg.metrics_public and cfg.ssl_context() is None
    assert not cfg.token_store().configured


@pytest.mark.parametrize(
    "env",
    [
        {"TIERSTREAM_API_AUTH": "maybe"},
        {"TIERSTREAM_METRICS_PUBLIC": "perhaps"},
        {"TIERSTREAM_WEB_TLS_CERT": "/x.pem"},
        {"TIERSTREAM_AUDIT_TIMEOUT": "0"},
        {"TIERSTREAM_AUDIT_TIMEOUT": "soon"},
        {"TIERSTREAM_API_TOKENS": "a:crm"},
    ],
)
def test_bad_security_settings_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SecurityConfigError) as err:
        _web(env)
    assert next(iter(env)) in str(err.value) or "TIERSTREAM_API_TOKENS" in str(err.value)


def test_unloadable_certificate_is_a_clear_start_error(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not a cert")
    cfg = _web(
        {
            "TIERSTREAM_WEB_TLS_CERT": str(tmp_path / "c.pem"),
            "TIERSTREAM_WEB_TLS_KEY": str(tmp_path / "k.pem"),
        }
    )
    with pytest.raises(SecurityConfigError, match="TIERSTREAM_WEB_TLS_CERT"):
        cfg.ssl_context()


def test_describe_never_contains_secrets(tmp_path: Path) -> None:
    token = new_token()
    cfg = _web(
        {
            "TIERSTREAM_API_TOKENS": f"a:ops:{hash_token(token)}",
            "TIERSTREAM_WEB_TLS_KEY_PASSWORD": "s3cret",
        }
    )
    text = repr(cfg.describe())
    assert hash_token(token) not in text and "s3cret" not in text
