"""Security settings from the environment: API tokens, HTTPS, audit, Redis credentials.

Kept apart from ``streams/settings.py`` so every security knob is parsed, validated
and documented in one place (docs/security.md lists them) and so a bad value stops the
worker at start-up with a message naming the variable, instead of surfacing as a 500
on the first request. Nothing here logs or returns a secret in clear text:
``describe()`` is the only form meant for logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings

import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from schemas.events import INPUT_TOPICS, OUTPUT_TOPICS, TICK_TOPICS
from streams.http.tokens import TokenEntry, TokenStore, TokenStoreError, parse_env_tokens


class SecurityConfigError(ValueError):
    """A security setting is invalid; the message names the variable."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise SecurityConfigError(f"{name} must be true or false, not {raw!r}")


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSecurity:
        e = os.environ if env is None else env
        mode = (e.get("TIERSTREAM_API_AUTH") or "required").strip().lower()
        if mode not in ("required", "disabled"):
            raise SecurityConfigError(
                f"TIERSTREAM_API_AUTH must be 'required' or 'disabled', not {mode!r}"
            )
        try:
            env_tokens = tuple(parse_env_tokens(e.get("TIERSTREAM_API_TOKENS", "")))
        except TokenStoreError as exc:
            raise SecurityConfigError(str(exc)) from None
        cert = e.get("TIERSTREAM_WEB_TLS_CERT") or None
        key = e.get("TIERSTREAM_WEB_TLS_KEY") or None
        if bool(cert) != bool(key):
            raise SecurityConfigError(
                "TIERSTREAM_WEB_TLS_CERT and TIERSTREAM_WEB_TLS_KEY must be set together"
            )
        raw_timeout = e.get("TIERSTREAM_AUDIT_TIMEOUT") or "5"
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 120:
            raise SecurityConfigError(
                f"TIERSTREAM_AUDIT_TIMEOUT must be seconds in (0, 120], not {raw_timeout!r}"
            )
        tokens_file = e.get("TIERSTREAM_API_TOKENS_FILE") or None
        return cls(
            tokens_file=Path(tokens_file) if tokens_file else None,
            env_tokens=env_tokens,
            auth_required=mode == "required",
            metrics_public=_flag(e, "TIERSTREAM_METRICS_PUBLIC", True),
            tls_cert=Path(cert) if cert else None,
            tls_key=Path(key) if key else None,
            tls_key_password=e.get("TIERSTREAM_WEB_TLS_KEY_PASSWORD") or None,
            audit_timeout_s=timeout,
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
        }


@dataclass(frozen=True)
class RedisCredentials:
    """The ACL user and password the service connects with (``AUTH user pass``)."""

    username: str | None
    password: str | None


def redis_credentials(url: str, env: Mapping[str, str] | None = None) -> RedisCredentials:
    """Credentials from ``REDIS_USERNAME``/``REDIS_PASSWORD``, else from the URL.

    The variables win so a URL can stay in a config map while the password sits in a
    secret store. A username without any password is refused: ACL users the service
    should use always have one (``nopass`` users defeat the point).
    """
    e = os.environ if env is None else env
    parts = urlsplit(url)
    user = e.get("REDIS_USERNAME") or (unquote(parts.username) if parts.username else None)
    password = e.get("REDIS_PASSWORD") or (unquote(parts.password) if parts.password else None)
    if user and not password:
        raise SecurityConfigError(
            "Redis user given without a password (set REDIS_PASSWORD or put it in REDIS_URL)"
        )
    return RedisCredentials(user or None, password or None)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))


#: Every Redis command the service sends, derived from streams/redis_sink.py and
#: streams/http/views.py and checked by tests/integration/test_security_redis.py (which runs
#: the worker under exactly these rules and finds no denial in ``ACL LOG``):
#: PING (health), HGETALL (profile reads, tier counts), EVALSHA + SCRIPT LOAD/EXISTS
#: (the versioned upsert script, loaded by redis-py's pipeline), and HGET/HSET/HINCRBY
#: (called inside that script; Redis checks script calls against the user's ACL too);
#: EXISTS + SET on ``<prefix>synced:<partition>`` markers (detecting a Redis that lost
#: its data, streams/worker/service.py resync) and SCAN + HGET for the Pareto gauge (every 60 s).
REDIS_ACL_COMMANDS: tuple[str, ...] = (
    "ping",
    "hgetall",
    "evalsha",
    "script|load",
    "script|exists",
    "hget",
    "hset",
    "hincrby",
    "exists",
    "set",
    "scan",
)


def redis_acl_rules(prefix: str) -> list[str]:
    """``ACL SETUSER <user> on >password`` rules: the key prefix and the commands only.

    No pub/sub channels, no other keys, no admin or dangerous commands (``-@all``
    first, then the allow-list).
    """
    if not prefix or any(ch in prefix for ch in "*?[]\\ "):
        raise SecurityConfigError(
            f"Redis key prefix must be non-empty, without glob chars: {prefix!r}"
        )
    return [
        "resetkeys",
        f"~{prefix}*",
        "resetchannels",
        "-@all",
        *(f"+{c}" for c in REDIS_ACL_COMMANDS),
    ]


class KafkaAuthError(RuntimeError):
    """The broker refused this client's credentials (or the client is not allowed in)."""


def kafka_preflight(conf: Mapping[str, object], timeout_s: float = 20.0) -> int:
    """Connect once with ``conf`` (librdkafka settings); fail fast and clearly.

    Why: with wrong SASL credentials librdkafka keeps retrying and a metadata call
    only gives up after its full timeout with "Broker transport failure", while the
    real reason sits in a log line. Here the authentication error is caught through
    ``error_cb`` and raised within about a second, naming the user and mechanism but
    never the password. Returns the number of brokers seen.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    auth_errors: list[str] = []

    def on_error(err: KafkaError) -> None:
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
            auth_errors.append(err.str())

    # librdkafka logs the same failure itself: silence it, the exception says it once.
    admin_conf: dict[str, Any] = {**conf, "error_cb": on_error, "log_level": 0}
    admin = AdminClient(admin_conf)
    user = conf.get("sasl.username")
    mech = conf.get("sasl.mechanism", "PLAIN")
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=1.0)
            if md.brokers:
                return len(md.brokers)
        except KafkaException as exc:
            last = exc
        admin.poll(0)  # serves error_cb
        if auth_errors:
            detail = auth_errors[0].split(": ", 1)[-1]
            raise KafkaAuthError(
                f"Kafka refused the credentials of user {user!r} ({mech}) at "
                f"{conf.get('bootstrap.servers')}: {detail}. Check KAFKA_SASL_USERNAME / "
                "KAFKA_SASL_PASSWORD / KAFKA_SASL_MECHANISM."
            )
    raise KafkaAuthError(
        f"no Kafka broker answered at {conf.get('bootstrap.servers')} within {timeout_s:.0f}s"
        f" ({last or 'no metadata'}); check KAFKA_BOOTSTRAP and KAFKA_SECURITY_PROTOCOL"
    )


@dataclass(frozen=True)
class KafkaAcl:
    """One ALLOW rule the worker's principal needs (docs/security.md shows them all)."""

    resource: str  # topic | group | transactional_id
    name: str
    pattern: str  # literal | prefixed
    operations: tuple[str, ...]
    why: str


def kafka_acls(settings: Settings) -> list[KafkaAcl]:
    """The least set of Kafka ACLs the worker needs, derived from its settings.

    Topics are created beforehand by an administrator (``tierstream topics create``
    as a privileged user), so the worker gets no cluster-level rights and CREATE only
    on its own changelog (faust insists on declaring that one).
    tests/integration/test_security_kafka.py runs the worker end to end on a broker
    with ``StandardAuthorizer`` and exactly these rules.
    """
    from streams.http.audit import AUDIT_TOPIC
    from streams.topics import changelog_topic

    acls = [
        KafkaAcl("topic", settings.topic(t), "literal", ("READ", "DESCRIBE"), "input")
        for t in INPUT_TOPICS
    ]
    acls += [
        # the worker's clock writes ticks and its agent reads them
        KafkaAcl("topic", settings.topic(t), "literal", ("READ", "WRITE", "DESCRIBE"), "ticks")
        for t in TICK_TOPICS
    ]
    acls += [
        KafkaAcl("topic", settings.topic(t), "literal", ("WRITE", "DESCRIBE"), "output")
        for t in (*OUTPUT_TOPICS, AUDIT_TOPIC)
    ]
    acls.append(
        KafkaAcl(
            "topic",
            changelog_topic(settings),
            "literal",
            ("READ", "WRITE", "DESCRIBE", "CREATE"),
            "state changelog: written per batch, read on recovery; CREATE because faust "
            "declares it at start-up even when it exists (it then gets TOPIC_ALREADY_EXISTS)",
        )
    )
    acls.append(
        KafkaAcl("group", settings.app_id, "literal", ("READ",), "the worker's consumer group")
    )
    acls.append(
        KafkaAcl(
            "transactional_id",
            f"{settings.app_id}-",
            "prefixed",
            ("WRITE", "DESCRIBE"),
            "exactly_once only: faust's ids are <app_id>-<group>-<partition>",
        )
    )
    return acls
