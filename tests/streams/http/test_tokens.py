"""Bearer tokens: issuing, storing (hashed) and checking them (no services)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from streams.http.access import WebSecurity
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
from streams.settings import SecurityConfigError

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
