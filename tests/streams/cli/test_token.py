"""``tierstream token create|list|revoke`` (no services)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from streams.cli.token import add_parser
from streams.http.tokens import TokenStore, hash_token


def test_token_cli_prints_the_token_once_and_stores_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command", required=True))
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
