"""Bearer tokens for the HTTP API: issuing, storing (hashed) and checking them.

Why SHA-256 and not scrypt/PBKDF2: a token is 256 bits from ``secrets`` — nobody can
guess it, so the slow, salted hashes made for low-entropy *passwords* buy nothing and
would cost CPU on every request (a lever for denial of service). A leaked tokens file
only holds digests of random values, which cannot be inverted. Checking a presented
token compares its digest with *every* stored digest through ``hmac.compare_digest``
and never stops early, so response time does not reveal how much of a digest matched
or which entry did.

Tokens come from a JSON file (written by ``tierstream token create``; rewritten
atomically, mode 0600) and/or ``TIERSTREAM_API_TOKENS`` (``name:role:sha256,...``):
both only ever hold digests. The file is re-read when it changes, so revoking a token
takes effect on the next request without a restart; a file that turns unreadable or
invalid makes authentication fail closed (``TokenStoreError``), never open.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

#: What each role may do. crm reads customer profiles; ops reads metrics and the
#: health details. Neither implies the other: least privilege per caller.
ROLES: Final = ("crm", "ops")
ROLE_CRM: Final = "crm"
ROLE_OPS: Final = "ops"

#: Recognisable prefix so a token that leaks into a repository or a log is easy to
#: find with secret scanners; the random part carries the 256 bits.
TOKEN_PREFIX: Final = "tst_"
_TOKEN_BYTES: Final = 32
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_DIGEST_RE: Final = re.compile(r"^[0-9a-f]{64}$")
#: A presented token longer than this is rejected before hashing (bounded work).
MAX_TOKEN_CHARS: Final = 256
FILE_VERSION: Final = 1
_ENTRY_KEYS: Final = frozenset({"name", "role", "sha256", "created_at"})


class TokenStoreError(ValueError):
    """The tokens file or variable is missing, unreadable or invalid."""


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: str
    sha256: str
    created_at: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"name": self.name, "role": self.role, "sha256": self.sha256}
        if self.created_at:
            out["created_at"] = self.created_at
        return out


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and role (never the token itself)."""

    name: str
    role: str


def new_token() -> str:
    """A fresh random bearer token (shown once, then only its digest is kept)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """Hex SHA-256 of the token's UTF-8 bytes: what the tokens file stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None.

    The scheme is case-insensitive (RFC 7235); anything else (Basic, an empty or
    oversized token, spaces inside it) counts as no usable token.
    """
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    if any(c.isspace() for c in token) or not token.isascii():
        return None
    return token


def validate_entry(name: str, role: str, digest: str, where: str) -> None:
    if not _NAME_RE.match(name):
        raise TokenStoreError(f"{where}: name must match {_NAME_RE.pattern}")
    if role not in ROLES:
        raise TokenStoreError(f"{where}: role must be one of {', '.join(ROLES)}")
    if not _DIGEST_RE.match(digest):
        raise TokenStoreError(f"{where}: sha256 must be 64 lowercase hex digits")


def parse_tokens_document(doc: Any, source: str) -> list[TokenEntry]:
    """Validate a parsed tokens file: ``{"version": 1, "tokens": [{name, role, sha256}]}``."""
    if not isinstance(doc, dict) or set(doc) - {"version", "tokens"}:
        raise TokenStoreError(f"{source}: expected an object with 'version' and 'tokens'")
    if doc.get("version", FILE_VERSION) != FILE_VERSION:
        raise TokenStoreError(f"{source}: unsupported version {doc.get('version')!r}")
    raw = doc.get("tokens", [])
    if not isinstance(raw, list):
        raise TokenStoreError(f"{source}: 'tokens' must be a list")
    entries: list[TokenEntry] = []
    for i, item in enumerate(raw):
        where = f"{source}: tokens[{i}]"
        if not isinstance(item, dict):
            raise TokenStoreError(f"{where}: must be an object")
        unknown = set(item) - _ENTRY_KEYS
        if unknown:
            raise TokenStoreError(f"{where}: unknown keys {sorted(unknown)}")
        name, role, digest = item.get("name"), item.get("role"), item.get("sha256")
        if not all(isinstance(v, str) for v in (name, role, digest)):
            raise TokenStoreError(f"{where}: name, role and sha256 are required strings")
        assert isinstance(name, str) and isinstance(role, str) and isinstance(digest, str)
        validate_entry(name, role, digest, where)
        created = item.get("created_at")
        entries.append(
            TokenEntry(name, role, digest, created if isinstance(created, str) else None)
        )
    _check_unique(entries, source)
    return entries


def _check_unique(entries: Sequence[TokenEntry], source: str) -> None:
    names: set[str] = set()
    digests: set[str] = set()
    for e in entries:
        if e.name in names:
            raise TokenStoreError(f"{source}: duplicate token name {e.name!r}")
        if e.sha256 in digests:
            raise TokenStoreError(f"{source}: the same token digest appears twice")
        names.add(e.name)
        digests.add(e.sha256)


def load_tokens_file(path: Path) -> list[TokenEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenStoreError(f"tokens file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:  # a ValueError, not an OSError: was a 500 per request
        raise TokenStoreError(f"tokens file {path}: not UTF-8 text ({exc.reason})") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise TokenStoreError(f"tokens file {path}: not valid JSON ({exc})") from None
    return parse_tokens_document(doc, f"tokens file {path}")


def parse_env_tokens(value: str) -> list[TokenEntry]:
    """``TIERSTREAM_API_TOKENS``: comma-separated ``name:role:sha256`` (digests only)."""
    entries: list[TokenEntry] = []
    for i, part in enumerate(p.strip() for p in value.split(",")):
        if not part:
            continue
        fields = part.split(":")
        where = f"TIERSTREAM_API_TOKENS entry {i + 1}"
        if len(fields) != 3:
            raise TokenStoreError(f"{where}: expected name:role:sha256")
        validate_entry(fields[0], fields[1], fields[2], where)
        entries.append(TokenEntry(fields[0], fields[1], fields[2]))
    _check_unique(entries, "TIERSTREAM_API_TOKENS")
    return entries


class TokenStore:
    """Answers "whose token is this?"; reloads the file when it changes."""

    def __init__(self, path: Path | None, env_entries: Iterable[TokenEntry] = ()) -> None:
        self.path = path
        self._env = tuple(env_entries)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._entries: tuple[TokenEntry, ...] = self._env
        self._broken: str | None = None
        if path is not None:
            self._reload(self._file_stamp())
            if self._broken:
                raise TokenStoreError(self._broken)

    @property
    def configured(self) -> bool:
        """True when any token source is set (even if it lists no tokens yet)."""
        return self.path is not None or bool(self._env)

    def entries(self) -> tuple[TokenEntry, ...]:
        self._maybe_reload()
        return self._entries

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal owning ``token``, or None. Raises TokenStoreError when broken."""
        entries = self.entries()
        if token is None:
            return None
        digest = hash_token(token).encode("ascii")
        found: TokenEntry | None = None
        for entry in entries:  # no early exit: constant work whichever entry matches
            if hmac.compare_digest(digest, entry.sha256.encode("ascii")):
                found = entry
        return Principal(found.name, found.role) if found is not None else None

    def _file_stamp(self) -> tuple[int, int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _maybe_reload(self) -> None:
        if self.path is None:
            return
        stamp = self._file_stamp()
        if stamp != self._stamp or self._broken:
            self._reload(stamp)
        if self._broken:
            raise TokenStoreError(self._broken)

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        assert self.path is not None
        with self._lock:
            try:
                if stamp is None:
                    raise TokenStoreError(f"tokens file {self.path}: cannot be read")
                from_file = load_tokens_file(self.path)
                combined = [*self._env, *from_file]
                _check_unique(combined, "tokens file + TIERSTREAM_API_TOKENS")
            except Exception as exc:
                # Fail closed: a revocation written with a typo must not leave the
                # revoked token working on the old list. Whatever went wrong, the
                # store answers TokenStoreError (503, audited), never a 500.
                self._entries = ()
                self._broken = (
                    str(exc)
                    if isinstance(exc, TokenStoreError)
                    else f"tokens file {self.path}: cannot be loaded ({type(exc).__name__})"
                )
                self._stamp = stamp
                return
            self._entries = tuple(combined)
            self._broken = None
            self._stamp = stamp


# --------------------------------------------------------------------- file editing


def _read_for_edit(path: Path) -> list[TokenEntry]:
    if not path.exists():
        return []
    return load_tokens_file(path)


def write_tokens_file(path: Path, entries: Sequence[TokenEntry]) -> None:
    """Write atomically (temp file + rename) with mode 0600: readers never see half a file."""
    _check_unique(entries, f"tokens file {path}")
    doc = {"version": FILE_VERSION, "tokens": [e.to_json() for e in entries]}
    data = json.dumps(doc, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _editing(path: Path) -> Iterator[None]:
    """Hold the tokens file's edit lock: one read-modify-write at a time.

    Without it ``token revoke`` racing ``token create`` could both read the old list,
    the revoke write first and the create then write the old list back with its new
    entry: the revoked token would work again. The lock is a sidecar file
    (``.<name>.lock``, mode 0600), not the tokens file itself, because every write
    replaces that file by a rename (a lock on the old inode would guard nothing).
    ``flock`` serialises processes and the threads of one process alike (each edit
    opens the lock file anew). Readers (the workers) need no lock: they only ever see
    a whole file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def add_token(path: Path, name: str, role: str) -> str:
    """Create a token, store only its digest in ``path`` and return the token (once)."""
    with _editing(path):
        entries = _read_for_edit(path)
        if any(e.name == name for e in entries):
            raise TokenStoreError(f"tokens file {path}: a token named {name!r} already exists")
        token = new_token()
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = TokenEntry(name, role, hash_token(token), created)
        validate_entry(entry.name, entry.role, entry.sha256, "new token")
        write_tokens_file(path, [*entries, entry])
    return token


def revoke_token(path: Path, name: str) -> bool:
    """Remove the token called ``name``; False when there was none."""
    with _editing(path):
        entries = _read_for_edit(path)
        kept = [e for e in entries if e.name != name]
        if len(kept) == len(entries):
            return False
        write_tokens_file(path, kept)
    return True
