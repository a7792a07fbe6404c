"""``tierstream token create|list|revoke``: manage the HTTP API's bearer tokens.

``create`` prints the new token exactly once, on stdout, and stores only its SHA-256
digest (streams/http/tokens.py explains why that hash). Nothing here prints a digest or a
token again: ``list`` shows names, roles and creation times only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from streams.http.tokens import ROLES, TokenStoreError, add_token, load_tokens_file, revoke_token


def _file(args: argparse.Namespace) -> Path | None:
    raw = args.file or os.environ.get("TIERSTREAM_API_TOKENS_FILE")
    return Path(raw) if raw else None


def _need_file(args: argparse.Namespace, cmd: str) -> Path:
    path = _file(args)
    if path is None:
        print(
            f"tierstream token {cmd}: no tokens file (--file or TIERSTREAM_API_TOKENS_FILE)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return path


def cmd_create(args: argparse.Namespace) -> int:
    path = _need_file(args, "create")
    try:
        token = add_token(path, args.name, args.role)
    except TokenStoreError as exc:
        print(f"tierstream token create: {exc}", file=sys.stderr)
        return 2
    print(
        f"created token {args.name!r} (role {args.role}) in {path}; it is shown only now:",
        file=sys.stderr,
    )
    print(token)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    path = _need_file(args, "list")
    try:
        entries = load_tokens_file(path)
    except TokenStoreError as exc:
        print(f"tierstream token list: {exc}", file=sys.stderr)
        return 2
    for e in entries:
        print(f"{e.name}\t{e.role}\t{e.created_at or '-'}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    path = _need_file(args, "revoke")
    try:
        removed = revoke_token(path, args.name)
    except TokenStoreError as exc:
        print(f"tierstream token revoke: {exc}", file=sys.stderr)
        return 2
    if not removed:
        print(f"tierstream token revoke: no token named {args.name!r} in {path}", file=sys.stderr)
        return 1
    print(f"revoked {args.name!r}; running workers stop accepting it on the next request")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``token`` on the top-level ``tierstream`` subparsers (streams/cli/__init__.py)."""
    t = subparsers.add_parser("token", help="manage HTTP API bearer tokens")
    tsub = t.add_subparsers(dest="token_command", required=True)
    file_help = "tokens file, JSON (env TIERSTREAM_API_TOKENS_FILE)"

    c = tsub.add_parser("create", help="create a token; prints it once, stores its hash")
    c.add_argument("--name", required=True, help="who uses it, e.g. crm-frontend")
    c.add_argument("--role", required=True, choices=ROLES)
    c.add_argument("--file", help=file_help)
    c.set_defaults(func=cmd_create)

    ls = tsub.add_parser("list", help="list token names and roles (never the tokens)")
    ls.add_argument("--file", help=file_help)
    ls.set_defaults(func=cmd_list)

    r = tsub.add_parser("revoke", help="remove a token by name")
    r.add_argument("--name", required=True)
    r.add_argument("--file", help=file_help)
    r.set_defaults(func=cmd_revoke)
