"""Unit tests of tokens, the token CLI, security settings and audit records (no services)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streams.cli.token import add_token_parser
from streams.http.audit import AuditLog, AuditUnavailable, profile_read
from streams.http.tokens import (
    TokenStore,
    TokenStoreError,
    add_token,
    bearer_token,
    hash_token,
    load_tokens_file,
    new_token,
    parse_env_tokens,
    revoke_token,
)
from streams.http.views import valid_customer_id
from streams.security import (
    SecurityConfigError,
    WebSecurity,
    redact_url,
    redis_acl_rules,
    redis_credentials,
)

REPO = Path(__file__).resolve().parents[3]
AUDIT_SCHEMA = json.loads((REPO / "schemas" / "json" / "audit.schema.json").read_text())


# ------------------------------------------------------------------------- tokens


def test_new_tokens_are_random_prefixed_and_stored_only_as_digests(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token = add_token(path, "crm-frontend", "crm")
    assert token.startswith("tst_") and len(token) >= 40
    assert new_token() != new_token()
    text = path.read_text()
    assert token not in text
    assert hash_token(token) in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    [entry] = load_tokens_file(path)
    assert (entry.name, entry.role) == ("crm-frontend", "crm")


def test_authenticate_finds_the_owner_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    crm = add_token(path, "crm-frontend", "crm")
    ops = add_token(path, "grafana", "ops")
    store = TokenStore(path)
    who = store.authenticate(crm)
    assert who is not None and (who.name, who.role) == ("crm-frontend", "crm")
    who = store.authenticate(ops)
    assert who is not None and who.role == "ops"
    assert store.authenticate(crm[:-1]) is None
    assert store.authenticate(crm + "x") is None
    assert store.authenticate(None) is None
    assert store.authenticate(hash_token(crm)) is None  # the digest is not a token


def test_revocation_and_new_tokens_apply_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    crm = add_token(path, "crm-frontend", "crm")
    store = TokenStore(path)
    assert store.authenticate(crm) is not None
    assert revoke_token(path, "crm-frontend")
    assert store.authenticate(crm) is None
    assert not revoke_token(path, "crm-frontend")
    later = add_token(path, "crm-2", "crm")
    assert store.authenticate(later) is not None


def test_a_broken_file_fails_closed_until_fixed(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    crm = add_token(path, "crm-frontend", "crm")
    store = TokenStore(path)
    good = path.read_text()
    path.write_text("{not json")
    with pytest.raises(TokenStoreError):
        store.authenticate(crm)
    path.write_text(good)
    assert store.authenticate(crm) is not None


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"tokens": [{"name": "a", "role": "admin", "sha256": "0" * 64}]},
        {"tokens": [{"name": "a", "role": "crm", "sha256": "0" * 63}]},
        {"tokens": [{"name": "a b", "role": "crm", "sha256": "0" * 64}]},
        {"tokens": [{"name": "a", "role": "crm", "sha256": "0" * 64, "token": "x"}]},
        {"tokens": [{"name": "a", "role": "crm", "sha256": "0" * 64}] * 2},
        {"version": 2, "tokens": []},
    ],
)
def test_invalid_token_files_are_refused_at_start(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(TokenStoreError):
        TokenStore(path)
    with pytest.raises(SecurityConfigError, match="TIERSTREAM_API_TOKENS_FILE"):
        WebSecurity(tokens_file=path).token_store()


def test_missing_tokens_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(SecurityConfigError):
        WebSecurity(tokens_file=tmp_path / "nope.json").token_store()


def test_env_tokens_hold_digests_only() -> None:
    token = new_token()
    entries = parse_env_tokens(f"svc:crm:{hash_token(token)}, ")
    store = TokenStore(None, entries)
    who = store.authenticate(token)
    assert who is not None and who.name == "svc"
    with pytest.raises(TokenStoreError):
        parse_env_tokens(f"svc:crm:{token}")  # a clear-text token is refused


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer a b", None),
        (None, None),
        ("Bearer " + "x" * 300, None),
        ("Bearer tök", None),
    ],
)
def test_bearer_header_parsing(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


def test_token_cli_prints_the_token_once_and_stores_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_token_parser(parser.add_subparsers(dest="command", required=True))
    path = tmp_path / "t.json"
    args = parser.parse_args(
        ["token", "create", "--name", "crm-app", "--role", "crm", "--file", str(path)]
    )
    assert args.func(args) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("tst_") and token not in path.read_text()
    assert TokenStore(path).authenticate(token) is not None
    # a second token with the same name is refused, the role is checked by argparse
    assert args.func(args) == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["token", "create", "--name", "x", "--role", "root", "--file", "f"])
    args = parser.parse_args(["token", "list", "--file", str(path)])
    assert args.func(args) == 0
    listed = capsys.readouterr().out
    assert "crm-app\tcrm" in listed and token not in listed and hash_token(token) not in listed
    args = parser.parse_args(["token", "revoke", "--name", "crm-app", "--file", str(path)])
    assert args.func(args) == 0
    assert TokenStore(path).authenticate(token) is None


# ------------------------------------------------------------------ security config


def test_web_security_defaults_fail_closed() -> None:
    cfg = WebSecurity.from_env({})
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
        WebSecurity.from_env(env)
    assert next(iter(env)) in str(err.value) or "TIERSTREAM_API_TOKENS" in str(err.value)


def test_unloadable_certificate_is_a_clear_start_error(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not a cert")
    cfg = WebSecurity.from_env(
        {
            "TIERSTREAM_WEB_TLS_CERT": str(tmp_path / "c.pem"),
            "TIERSTREAM_WEB_TLS_KEY": str(tmp_path / "k.pem"),
        }
    )
    with pytest.raises(SecurityConfigError, match="TIERSTREAM_WEB_TLS_CERT"):
        cfg.ssl_context()


def test_describe_never_contains_secrets(tmp_path: Path) -> None:
    token = new_token()
    cfg = WebSecurity.from_env(
        {
            "TIERSTREAM_API_TOKENS": f"a:ops:{hash_token(token)}",
            "TIERSTREAM_WEB_TLS_KEY_PASSWORD": "s3cret",
        }
    )
    text = repr(cfg.describe())
    assert hash_token(token) not in text and "s3cret" not in text


def test_redis_credentials_and_redaction() -> None:
    c = redis_credentials("redis://svc:p%40ss@127.0.0.1:6379/0", env={})
    assert (c.username, c.password) == ("svc", "p@ss")
    c = redis_credentials("redis://127.0.0.1/0", env={"REDIS_USERNAME": "u", "REDIS_PASSWORD": "p"})
    assert (c.username, c.password) == ("u", "p")
    with pytest.raises(SecurityConfigError):
        redis_credentials("redis://onlyuser@127.0.0.1:6379/0", env={})
    assert redact_url("rediss://svc:hunter2@h:6380/0") == "rediss://svc:***@h:6380/0"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_redis_acl_rules_are_prefix_and_allow_list_only() -> None:
    rules = redis_acl_rules("tierstream:")
    assert rules[:4] == ["resetkeys", "~tierstream:*", "resetchannels", "-@all"]
    assert all(r.startswith("+") for r in rules[4:])
    assert "+flushdb" not in rules and "+keys" not in rules and "+eval" not in rules
    with pytest.raises(SecurityConfigError):
        redis_acl_rules("tier*")


# ------------------------------------------------------------------------- audit


def test_audit_records_match_the_schema() -> None:
    for result in ("ok", "not_found", "denied", "error"):
        rec = profile_read("C000042", result, "crm-frontend", "crm")
        jsonschema.validate(json.loads(rec.to_json()), AUDIT_SCHEMA)
    rec = profile_read("C1", "denied", None, None)
    jsonschema.validate(json.loads(rec.to_json()), AUDIT_SCHEMA)
    examples = json.loads((REPO / "schemas" / "examples" / "audit.json").read_text())
    for example in examples:
        jsonschema.validate(example, AUDIT_SCHEMA)
    with pytest.raises(ValueError):
        profile_read("C1", "maybe", None, None)


class _Topic:
    """A stand-in for a faust topic: records what was sent, or never acknowledges."""

    def __init__(self, ack: bool) -> None:
        self.ack = ack
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, *, key: Any = None, value: Any = None) -> asyncio.Future[None]:
        self.sent.append((key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.ack:
            fut.set_result(None)
        return fut


def test_audit_waits_for_the_ack_and_refuses_when_it_does_not_come() -> None:
    async def run() -> None:
        ok = _Topic(ack=True)
        await AuditLog(ok, 1.0).record(profile_read("C1", "ok", "a", "crm"))
        assert ok.sent and ok.sent[0][0] == b"C1"
        stuck = _Topic(ack=False)
        with pytest.raises(AuditUnavailable):
            await AuditLog(stuck, 0.05).record(profile_read("C1", "ok", "a", "crm"))

    asyncio.run(run())


@pytest.mark.parametrize(
    ("cid", "ok"), [("C1", True), ("", False), ("x" * 129, False), ("a\nb", False)]
)
def test_customer_id_validation(cid: str, ok: bool) -> None:
    assert valid_customer_id(cid) is ok
