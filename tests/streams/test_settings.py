"""Settings: the one configuration root, its credential rule and what it lets into logs."""

from __future__ import annotations

import pytest

from streams.settings import RedisCredentials, SecurityConfigError, Settings, redact_url


def _creds(env: dict[str, str]) -> RedisCredentials:
    return Settings.from_env(env).redis_credentials()


def test_redis_credentials_and_redaction() -> None:
    c = _creds({"REDIS_URL": "redis://svc:p%40ss@127.0.0.1:6379/0"})
    assert (c.username, c.password) == ("svc", "p@ss")
    c = _creds({"REDIS_URL": "redis://127.0.0.1/0", "REDIS_USERNAME": "u", "REDIS_PASSWORD": "p"})
    assert (c.username, c.password) == ("u", "p")
    with pytest.raises(SecurityConfigError):
        _creds({"REDIS_URL": "redis://onlyuser@127.0.0.1:6379/0"})
    assert redact_url("rediss://svc:hunter2@h:6380/0") == "rediss://svc:***@h:6380/0"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_redacted_settings_hold_no_secret() -> None:
    secrets = ("hunter2", "redis-pw", "sasl-pw", "key-pw", "tls-pw", "0" * 64)
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://svc:hunter2@h:6379/0",
            "REDIS_PASSWORD": "redis-pw",
            "KAFKA_SASL_PASSWORD": "sasl-pw",
            "KAFKA_SSL_KEY_PASSWORD": "key-pw",
            "TIERSTREAM_WEB_TLS_KEY_PASSWORD": "tls-pw",
            "TIERSTREAM_API_TOKENS": "a:crm:" + "0" * 64,
        }
    )
    assert settings.web.tls_key_password == "tls-pw"  # read, so redaction has work to do
    text = repr(settings.redacted())
    assert not [s for s in secrets if s in text]
    assert "svc" in text and "***" in text


def test_every_web_security_variable_is_read_by_settings() -> None:
    env = {
        "TIERSTREAM_API_AUTH": "disabled",
        "TIERSTREAM_API_TOKENS": "a:crm:" + "1" * 64,
        "TIERSTREAM_API_TOKENS_FILE": "/t.json",
        "TIERSTREAM_METRICS_PUBLIC": "false",
        "TIERSTREAM_WEB_TLS_CERT": "/c.pem",
        "TIERSTREAM_WEB_TLS_KEY": "/k.pem",
        "TIERSTREAM_WEB_TLS_KEY_PASSWORD": "pw",
        "TIERSTREAM_AUDIT_TIMEOUT": "3",
    }
    web = Settings.from_env(env).web
    assert sorted(v for v in web.__dict__.values() if v) == sorted(env.values())


def test_a_password_in_the_url_query_is_masked_and_used() -> None:
    """redis-py reads ``?password=`` like the user part's password: it must be masked
    in what the worker logs at INFO (``settings: ...``) and count for the credential rule."""
    url = "rediss://h:6380/0?ssl_ca_certs=/etc/ca.pem&username=svc&password=s3cr%40t"
    settings = Settings.from_env({"REDIS_URL": url})
    text = repr(settings.redacted())
    assert "s3cr" not in text and "password=***" in text
    assert "ssl_ca_certs=/etc/ca.pem" in text  # the rest of the URL stays readable
    creds = settings.redis_credentials()
    assert (creds.username, creds.password) == ("svc", "s3cr@t")
    # both places at once, and a user part without a password
    masked = redact_url("redis://u:pw1@h:1/0?Password=pw2")
    assert "pw1" not in masked and "pw2" not in masked
    assert redact_url("redis://u@h:1/0?db=2") == "redis://u@h:1/0?db=2"
