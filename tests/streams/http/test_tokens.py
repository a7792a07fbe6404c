"""Bearer tokens: issuing, storing (hashed) and checking them (no services)."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from streams.http import tokens as tokens_module
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


def test_revoke_racing_create_never_brings_the_revoked_token_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``create`` pauses between reading the file and writing it back while ``revoke``
    runs: the edit lock makes the revoke wait, so the create cannot write the revoked
    entry back (without the lock the revoke finished first and the old token returned)."""
    path = tmp_path / "tokens.json"
    old = add_token(path, "crm-old", "crm")
    read_by_create = threading.Event()
    let_create_write = threading.Event()
    real_read = tokens_module._read_for_edit

    def paused_read(p: Path) -> list[Any]:
        entries = real_read(p)
        if threading.current_thread().name == "create":
            read_by_create.set()
            let_create_write.wait(10)
        return entries

    monkeypatch.setattr(tokens_module, "_read_for_edit", paused_read)
    create = threading.Thread(
        target=add_token, args=(path, "crm-new", "crm"), name="create", daemon=True
    )
    revoke = threading.Thread(
        target=revoke_token, args=(path, "crm-old"), name="revoke", daemon=True
    )
    create.start()
    assert read_by_create.wait(10)
    revoke.start()
    revoke.join(0.5)  # with the lock it waits for the create; without, it is done
    let_create_write.set()
    create.join(10)
    revoke.join(10)
    assert not create.is_alive() and not revoke.is_alive()
    assert [e.name for e in load_tokens_file(path)] == ["crm-new"]
    assert TokenStore(path).authenticate(old) is None


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b'{"tokens": [{"name": "\xe9"}]}'])
def test_a_tokens_file_that_is_not_utf8_fails_closed_like_any_broken_file(
    tmp_path: Path, content: bytes
) -> None:
    """Before: ``UnicodeDecodeError`` escaped the store (a 500 per request, and the
    view's denial audit never ran). Now it is a ``TokenStoreError`` (503, audited)."""
    path = tmp_path / "tokens.json"
    crm = add_token(path, "crm-frontend", "crm")
    store = TokenStore(path)
    good = path.read_bytes()
    path.write_bytes(content)
    with pytest.raises(TokenStoreError, match="UTF-8"):
        store.authenticate(crm)
    with pytest.raises(TokenStoreError):
        TokenStore(path)
    path.write_bytes(good)
    assert store.authenticate(crm) is not None


def test_the_readme_documents_the_format_parse_env_tokens_reads() -> None:
    """The README's configuration row for TIERSTREAM_API_TOKENS once said "inline
    JSON"; its example, with real digests filled in, must parse."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if "`TIERSTREAM_API_TOKENS` |" in line]
    assert "json of the same" not in row.lower()
    [example] = re.findall(r"e\.g\. `([^`]+)`", row)
    filled = example.replace("<64 hex>", hash_token(new_token()), 1).replace(
        "<64 hex>", hash_token(new_token())
    )
    entries = parse_env_tokens(filled)
    assert [(e.name, e.role) for e in entries] == [("crm-frontend", "crm"), ("grafana", "ops")]
