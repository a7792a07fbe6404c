"""Who may call the HTTP API: its security settings, validated, and the role checks.

``WebSecurity`` turns the settings as written (``Settings.web``, read from the
environment with every other setting) into checked values: a bad value stops the
worker at start-up with a message naming the variable, instead of surfacing as a 500
on the first request. ``AccessControl`` turns a request's Authorization header into a
principal and checks its role. Nothing here logs or returns a secret in clear text:
``describe()`` is the only form meant for logs. docs/security.md has the full matrix.
"""

from __future__ import annotations

import logging
import math
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from faust.web import Request

from streams.http.limits import LimitConfig
from streams.http.tokens import (
    Principal,
    TokenEntry,
    TokenStore,
    TokenStoreError,
    bearer_token,
    parse_env_tokens,
)
from streams.settings import SecurityConfigError, WebSettings

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(raw: str | None, name: str, default: bool) -> bool:
    if raw is None or raw.strip() == "":
        return default
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise SecurityConfigError(f"{name} must be true or false, not {raw!r}")


def _number(raw: str | None, name: str, default: float, low: float, high: float) -> float:
    """A number within [low, high] (a bad value names the variable)."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise SecurityConfigError(f"{name} must be a number in [{low:g}, {high:g}], not {raw!r}")
    return value


def _limits(web: WebSettings) -> LimitConfig:
    d = LimitConfig()
    return LimitConfig(
        client_rate=_number(web.client_rate, "TIERSTREAM_API_CLIENT_RATE", d.client_rate, 0.1, 1e5),
        client_concurrency=int(
            _number(
                web.client_concurrency,
                "TIERSTREAM_API_CLIENT_CONCURRENCY",
                d.client_concurrency,
                1,
                10_000,
            )
        ),
        token_rate=_number(web.token_rate, "TIERSTREAM_API_TOKEN_RATE", d.token_rate, 0.1, 1e5),
        token_concurrency=int(
            _number(
                web.token_concurrency,
                "TIERSTREAM_API_TOKEN_CONCURRENCY",
                d.token_concurrency,
                1,
                10_000,
            )
        ),
        auth_failures_per_min=_number(
            web.auth_failures_per_min,
            "TIERSTREAM_API_AUTH_FAILURES_PER_MIN",
            d.auth_failures_per_min,
            1,
            1e6,
        ),
        daily_read_quota=int(
            _number(
                web.daily_read_quota,
                "TIERSTREAM_API_DAILY_READ_QUOTA",
                d.daily_read_quota,
                0,
                1e12,
            )
        ),
    )


@dataclass(frozen=True)
class WebSecurity:
    """How the HTTP API authenticates, what is public, HTTPS and the audit timeout.

    ``auth_required`` is on unless ``TIERSTREAM_API_AUTH=disabled``: with no token
    configured the profile endpoint then answers 401 to everyone (fail closed), it
    does not fall back to open access.
    """

    tokens_file: Path | None = None
    env_tokens: tuple[TokenEntry, ...] = ()
    auth_required: bool = True
    metrics_public: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_key_password: str | None = None
    audit_timeout_s: float = 5.0
    limits: LimitConfig = field(default_factory=LimitConfig)
    audit_summary_interval_s: float = 60.0

    @classmethod
    def from_settings(cls, web: WebSettings) -> WebSecurity:
        """Check the settings as written; raises ``SecurityConfigError`` naming the variable."""
        mode = (web.api_auth or "required").strip().lower()
        if mode not in ("required", "disabled"):
            raise SecurityConfigError(
                f"TIERSTREAM_API_AUTH must be 'required' or 'disabled', not {mode!r}"
            )
        try:
            env_tokens = tuple(parse_env_tokens(web.api_tokens))
        except TokenStoreError as exc:
            raise SecurityConfigError(str(exc)) from None
        cert, key = web.tls_cert, web.tls_key
        if bool(cert) != bool(key):
            raise SecurityConfigError(
                "TIERSTREAM_WEB_TLS_CERT and TIERSTREAM_WEB_TLS_KEY must be set together"
            )
        raw_timeout = web.audit_timeout or "5"
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 120:
            raise SecurityConfigError(
                f"TIERSTREAM_AUDIT_TIMEOUT must be seconds in (0, 120], not {raw_timeout!r}"
            )
        return cls(
            tokens_file=Path(web.api_tokens_file) if web.api_tokens_file else None,
            env_tokens=env_tokens,
            auth_required=mode == "required",
            metrics_public=_flag(web.metrics_public, "TIERSTREAM_METRICS_PUBLIC", True),
            tls_cert=Path(cert) if cert else None,
            tls_key=Path(key) if key else None,
            tls_key_password=web.tls_key_password or None,
            audit_timeout_s=timeout,
            limits=_limits(web),
            audit_summary_interval_s=_number(
                web.audit_summary_interval, "TIERSTREAM_AUDIT_SUMMARY_INTERVAL", 60.0, 1, 3600
            ),
        )

    def token_store(self) -> TokenStore:
        """Load the tokens now, so a missing or invalid file stops start-up."""
        try:
            return TokenStore(self.tokens_file, self.env_tokens)
        except TokenStoreError as exc:
            raise SecurityConfigError(f"TIERSTREAM_API_TOKENS_FILE: {exc}") from None

    def ssl_context(self) -> ssl.SSLContext | None:
        """Server-side TLS context (TLS 1.2+), or None for plain HTTP."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.tls_cert, self.tls_key, self.tls_key_password)
        except (OSError, ssl.SSLError) as exc:
            raise SecurityConfigError(
                f"TIERSTREAM_WEB_TLS_CERT/TIERSTREAM_WEB_TLS_KEY: cannot load "
                f"{self.tls_cert} / {self.tls_key}: {exc}"
            ) from None
        return ctx

    def describe(self) -> dict[str, object]:
        """Safe for logs: paths and switches, never tokens, digests or passwords."""
        return {
            "auth": "required" if self.auth_required else "DISABLED",
            "tokens_file": str(self.tokens_file) if self.tokens_file else None,
            "env_tokens": len(self.env_tokens),
            "metrics_public": self.metrics_public,
            "https": self.tls_cert is not None,
            "audit_timeout_s": self.audit_timeout_s,
            "limits": self.limits.__dict__,
            "audit_summary_interval_s": self.audit_summary_interval_s,
        }


class Denied(Exception):
    """Authentication or authorisation failed; carries the HTTP answer."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class AccessControl:
    """Turns a request's Authorization header into a principal and checks roles."""

    def __init__(self, config: WebSecurity, store: TokenStore) -> None:
        self.config = config
        self.store = store

    def principal(self, request: Request) -> Principal | None:
        """The caller, or None when no Authorization header was sent.

        A header that is present but malformed, or a token nobody issued, is a 401:
        silently treating it as anonymous would hide a misconfigured client.
        """
        header = request.headers.get("Authorization")
        if header is None:
            return None
        token = bearer_token(header)
        try:
            who = self.store.authenticate(token) if token is not None else None
        except TokenStoreError as exc:
            log.error("API tokens unavailable, refusing authenticated requests: %s", exc)
            raise Denied(503, "authentication unavailable") from None
        if who is None:
            raise Denied(401, "invalid token")
        return who

    def require(self, request: Request, role: str) -> Principal | None:
        """The caller if it holds ``role``; raises Denied (401/403) otherwise.

        Returns None only when authentication is disabled by configuration.
        """
        if not self.config.auth_required:
            return None
        who = self.principal(request)
        if who is None:
            raise Denied(401, "authentication required")
        if who.role != role:
            raise Denied(403, "forbidden")
        return who

    def has_role(self, request: Request, role: str) -> bool:
        """For endpoints that are open but show more to ``role``."""
        if not self.config.auth_required:
            return True
        who = self.principal(request)
        return who is not None and who.role == role
