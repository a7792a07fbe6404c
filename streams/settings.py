"""Service configuration: environment variables with matching CLI flags.

The one configuration root: every setting of every command, the HTTP API's security
included, is read here and nowhere else. Every setting has one environment variable
(documented in the README's configuration table) and the CLI flag of the same name
overrides it. Kafka SASL/SSL settings are passed through from ``KAFKA_*`` variables so
a bank can point the service at a secured cluster without code changes; secrets are
never logged (``redacted()``, ``redact_url``). The rules on credentials live with them:
``Settings.redis_credentials`` refuses a Redis user without a password, and a bad
security value raises ``SecurityConfigError`` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from schemas.events import INPUT_TOPICS, OUTPUT_TOPICS, TICK_TOPICS

#: Kafka security settings passed through to every client (env name -> librdkafka key).
_KAFKA_SECURITY_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "KAFKA_SASL_USERNAME": "sasl.username",
    "KAFKA_SASL_PASSWORD": "sasl.password",
    "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
    "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
    "KAFKA_SSL_KEY_PASSWORD": "ssl.key.password",
}
_SECRET_KEYS = {"sasl.password", "ssl.key.password"}


#: The app id's base: the default app id is the topic prefix followed by it.
APP_ID_BASE = "tierstream"


def default_app_id(topic_prefix: str) -> str:
    """The app id (consumer group, changelog, transactional ids) when none is given:
    ``<topic prefix>tierstream``. Two deployments with different topic prefixes on one
    cluster then never share a consumer group's offsets or a state changelog."""
    return f"{topic_prefix}{APP_ID_BASE}"


class SecurityConfigError(ValueError):
    """A security setting is invalid; the message names the variable."""


_DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str, where: str) -> int:
    """``400d``, ``12h``, ``30m``, ``90s``, ``1500ms`` -> milliseconds; ``forever`` or
    ``-1`` -> -1 (Kafka's "never delete"). Raises ValueError naming ``where``."""
    t = text.strip().lower()
    if t in ("forever", "-1"):
        return -1
    for unit in ("ms", "s", "m", "h", "d"):  # "ms" before "s" and "m"
        number = t.removesuffix(unit)
        if number != t and number.isdigit() and int(number) > 0:
            return int(number) * _DURATION_UNITS_MS[unit]
    raise ValueError(
        f"{where}: {text!r} is not a duration (a positive number with ms, s, m, h or d, "
        "or 'forever')"
    )


def parse_retention(text: str, where: str = "TIERSTREAM_RETENTION") -> dict[str, int]:
    """``audit=400d,dead-letters=30d`` -> {contract topic name: retention ms}."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        topic, sep, duration = part.partition("=")
        if not sep or not topic.strip():
            raise ValueError(f"{where}: expected topic=duration, got {part!r}")
        out[topic.strip()] = parse_duration_ms(duration, f"{where} ({topic.strip()})")
    return out


def _field_list(raw: str | None) -> tuple[str, ...] | None:
    """``a,b,c`` -> the names; unset -> None (the defaults); ``none`` -> () (nothing)."""
    if raw is None or not raw.strip():
        return None
    if raw.strip().lower() == "none":
        return ()
    return tuple(f.strip() for f in raw.split(",") if f.strip())


def _bool_env(raw: str | None, name: str) -> bool:
    if raw is None or not raw.strip():
        return False
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {raw!r}")


#: URL query parameters that carry a secret: redis-py reads ``?password=`` like the
#: password of the URL's user part, so it is masked the same way.
_SECRET_QUERY_KEYS = frozenset({"password"})


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and error messages).

    Both places a Redis URL can carry one are masked: the user part
    (``redis://user:pw@host``) and the ``?password=`` query parameter, which redis-py
    reads too.
    """
    parts = urlsplit(url)
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _v in pairs):
            masked = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs]
            query = urlencode(masked, safe="*/")
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _query_value(url: str, name: str) -> str | None:
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == name:
            return value
    return None


@dataclass(frozen=True)
class RedisCredentials:
    """The ACL user and password the service connects with (``AUTH user pass``)."""

    username: str | None
    password: str | None


@dataclass(frozen=True)
class WebSettings:
    """The HTTP API's security settings, as written in the environment.

    Read here with everything else; validated by ``streams.http.access.WebSecurity``
    when the worker builds its HTTP API, so a bad value stops the worker at start-up
    with a message naming the variable, while commands without an HTTP API (simulate,
    report, ...) are not stopped by a setting they never use. docs/security.md lists
    them.
    """

    api_auth: str | None = None  # TIERSTREAM_API_AUTH: required | disabled
    api_tokens: str = ""  # TIERSTREAM_API_TOKENS: name:role:sha256,... (digests only)
    api_tokens_file: str | None = None  # TIERSTREAM_API_TOKENS_FILE
    metrics_public: str | None = None  # TIERSTREAM_METRICS_PUBLIC: true | false
    tls_cert: str | None = None  # TIERSTREAM_WEB_TLS_CERT
    tls_key: str | None = None  # TIERSTREAM_WEB_TLS_KEY
    tls_key_password: str | None = None  # TIERSTREAM_WEB_TLS_KEY_PASSWORD
    audit_timeout: str | None = None  # TIERSTREAM_AUDIT_TIMEOUT: seconds in (0, 120]
    # abuse limits (streams/http/limits.py); seconds between denial summaries
    client_rate: str | None = None  # TIERSTREAM_API_CLIENT_RATE: requests/s per address
    client_concurrency: str | None = None  # TIERSTREAM_API_CLIENT_CONCURRENCY
    token_rate: str | None = None  # TIERSTREAM_API_TOKEN_RATE: requests/s per token
    token_concurrency: str | None = None  # TIERSTREAM_API_TOKEN_CONCURRENCY
    auth_failures_per_min: str | None = None  # TIERSTREAM_API_AUTH_FAILURES_PER_MIN
    daily_read_quota: str | None = None  # TIERSTREAM_API_DAILY_READ_QUOTA: per token
    audit_summary_interval: str | None = None  # TIERSTREAM_AUDIT_SUMMARY_INTERVAL: s

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebSettings:
        return cls(
            api_auth=env.get("TIERSTREAM_API_AUTH") or None,
            api_tokens=env.get("TIERSTREAM_API_TOKENS", ""),
            api_tokens_file=env.get("TIERSTREAM_API_TOKENS_FILE") or None,
            metrics_public=env.get("TIERSTREAM_METRICS_PUBLIC"),
            tls_cert=env.get("TIERSTREAM_WEB_TLS_CERT") or None,
            tls_key=env.get("TIERSTREAM_WEB_TLS_KEY") or None,
            tls_key_password=env.get("TIERSTREAM_WEB_TLS_KEY_PASSWORD") or None,
            audit_timeout=env.get("TIERSTREAM_AUDIT_TIMEOUT") or None,
            client_rate=env.get("TIERSTREAM_API_CLIENT_RATE") or None,
            client_concurrency=env.get("TIERSTREAM_API_CLIENT_CONCURRENCY") or None,
            token_rate=env.get("TIERSTREAM_API_TOKEN_RATE") or None,
            token_concurrency=env.get("TIERSTREAM_API_TOKEN_CONCURRENCY") or None,
            auth_failures_per_min=env.get("TIERSTREAM_API_AUTH_FAILURES_PER_MIN") or None,
            daily_read_quota=env.get("TIERSTREAM_API_DAILY_READ_QUOTA") or None,
            audit_summary_interval=env.get("TIERSTREAM_AUDIT_SUMMARY_INTERVAL") or None,
        )

    def redacted(self) -> dict[str, Any]:
        """Safe for logs: the key password and the token digests replaced."""
        out = dict(self.__dict__)
        out["api_tokens"] = "***" if self.api_tokens else ""
        out["tls_key_password"] = "***" if self.tls_key_password else None
        return out


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_username: str | None = None
    redis_password: str | None = None
    redis_key_prefix: str = "tierstream:"
    #: Server versions the operator vouches carry the 2025 Lua fixes (a distribution's
    #: backport reports the old number): no start-up warning for exactly these.
    redis_accept_versions: tuple[str, ...] = ()
    rules_path: str | None = None
    topic_prefix: str = ""
    partitions: int = 8
    replication_factor: int = 1
    #: Development only: let `topics create` make the audit topic with one replica
    #: (a single local broker); refused otherwise (streams/topics.py).
    dev_single_replica: bool = False
    #: retention.ms per contract topic name, over the defaults of streams/topics.py.
    retention: dict[str, int] = field(default_factory=dict)
    #: Personal fields replaced by a digest in dead letters (None: the defaults of
    #: schemas/redaction.py; empty: no redaction).
    dead_letter_redact: tuple[str, ...] | None = None
    #: HMAC key of those digests (a secret; without it they are plain SHA-256).
    dead_letter_redact_key: str | None = None
    store: str = "rocksdb://"  # or memory://
    #: Consumer group id; names the changelog and the transactional ids. "" (the
    #: default): ``default_app_id(topic_prefix)``, and it follows the prefix when a
    #: flag changes it (``with_overrides``); an explicit id always wins.
    app_id: str = ""
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: str = ".tierstream-data"
    processing_guarantee: str = "at_least_once"
    #: Seconds between clock ticks per owned partition (0: this worker writes none).
    tick_interval: float = 60.0
    #: Consumer-group session timeout: how long a dead worker keeps its partitions.
    session_timeout: float = 15.0
    #: Standby replicas of the state table (warm copies on other workers).
    standby_replicas: int = 0
    #: Event-time regressions within an input partition up to this are not counted
    #: (``tierstream_input_time_regressions_total``; docs/topics.md, "Order").
    time_regression_tolerance_ms: int = 60_000
    kafka_security: dict[str, str] = field(default_factory=dict)
    web: WebSettings = field(default_factory=WebSettings)
    #: True when ``app_id`` was derived from the topic prefix rather than given.
    app_id_derived: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not self.app_id:
            object.__setattr__(self, "app_id", default_app_id(self.topic_prefix))
            object.__setattr__(self, "app_id_derived", True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        sec = {key: e[name] for name, key in _KAFKA_SECURITY_ENV.items() if e.get(name)}
        d = cls()
        return cls(
            kafka_bootstrap=e.get("KAFKA_BOOTSTRAP", d.kafka_bootstrap),
            redis_url=e.get("REDIS_URL", d.redis_url),
            redis_username=e.get("REDIS_USERNAME") or None,
            redis_password=e.get("REDIS_PASSWORD") or None,
            redis_key_prefix=e.get("TIERSTREAM_REDIS_PREFIX", d.redis_key_prefix),
            redis_accept_versions=tuple(
                v.strip()
                for v in e.get("TIERSTREAM_REDIS_ACCEPT_VERSION", "").split(",")
                if v.strip()
            ),
            rules_path=e.get("TIERSTREAM_RULES") or None,
            topic_prefix=e.get("TIERSTREAM_TOPIC_PREFIX", d.topic_prefix),
            partitions=int(e.get("TIERSTREAM_PARTITIONS", d.partitions)),
            replication_factor=int(e.get("TIERSTREAM_REPLICATION_FACTOR", d.replication_factor)),
            dev_single_replica=_bool_env(
                e.get("TIERSTREAM_DEV_SINGLE_REPLICA"), "TIERSTREAM_DEV_SINGLE_REPLICA"
            ),
            retention=parse_retention(e.get("TIERSTREAM_RETENTION", "")),
            dead_letter_redact=_field_list(e.get("TIERSTREAM_DEAD_LETTER_REDACT")),
            dead_letter_redact_key=e.get("TIERSTREAM_DEAD_LETTER_REDACT_KEY") or None,
            store=e.get("TIERSTREAM_STORE", d.store),
            app_id=e.get("TIERSTREAM_APP_ID", ""),
            web_host=e.get("TIERSTREAM_WEB_HOST", d.web_host),
            web_port=int(e.get("TIERSTREAM_WEB_PORT", d.web_port)),
            data_dir=e.get("TIERSTREAM_DATA_DIR", d.data_dir),
            processing_guarantee=e.get("TIERSTREAM_PROCESSING_GUARANTEE", d.processing_guarantee),
            tick_interval=float(e.get("TIERSTREAM_TICK_INTERVAL", d.tick_interval)),
            session_timeout=float(e.get("TIERSTREAM_SESSION_TIMEOUT", d.session_timeout)),
            standby_replicas=int(e.get("TIERSTREAM_STANDBY_REPLICAS", d.standby_replicas)),
            time_regression_tolerance_ms=int(
                e.get("TIERSTREAM_TIME_REGRESSION_TOLERANCE_MS", d.time_regression_tolerance_ms)
            ),
            kafka_security=sec,
            web=WebSettings.from_env(e),
        )

    def with_overrides(self, **kw: Any) -> Settings:
        """Apply CLI flags: only keys whose value is not None. A derived app id is
        derived again, from the topic prefix the flags leave."""
        given = {k: v for k, v in kw.items() if v is not None}
        if self.app_id_derived and "app_id" not in given:
            given["app_id"] = ""
        return replace(self, **given)

    def topic(self, name: str) -> str:
        """The full (prefixed) topic name for a contract name like ``transactions``."""
        return f"{self.topic_prefix}{name}"

    @property
    def input_topics(self) -> tuple[str, ...]:
        return tuple(self.topic(t) for t in INPUT_TOPICS)

    @property
    def consumed_topics(self) -> tuple[str, ...]:
        """Every topic the worker consumes: the inputs and the clock's ``ticks``.

        "Caught up" means caught up on all of them: a worker that has read every
        transaction may still owe the decisions of ticks written after them.
        """
        return (*self.input_topics, *(self.topic(t) for t in TICK_TOPICS))

    @property
    def output_topics(self) -> tuple[str, ...]:
        return tuple(self.topic(t) for t in OUTPUT_TOPICS)

    def confluent_config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka configuration for confluent-kafka clients (admin, simulator, replay)."""
        conf: dict[str, Any] = {"bootstrap.servers": self.kafka_bootstrap}
        conf.update(self.kafka_security)
        conf.update(extra)
        return conf

    def producer_config(self, **extra: Any) -> dict[str, Any]:
        """A confluent-kafka producer that partitions like Java clients and aiokafka.

        librdkafka's default partitioner is CRC32-based; Kafka's Java clients and faust
        (aiokafka) use murmur2. Every producer of input topics must use murmur2 so one
        customer's events land in the partition whose changelog holds their state.
        """
        return self.confluent_config(
            **{
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                **extra,
            }
        )

    def redis_credentials(self) -> RedisCredentials:
        """Credentials from ``REDIS_USERNAME``/``REDIS_PASSWORD``, else from the URL
        (its user part, else its ``?username=``/``?password=`` parameters).

        The variables win so a URL can stay in a config map while the password sits in a
        secret store. A username without any password is refused: ACL users the service
        should use always have one (``nopass`` users defeat the point). The worker
        connects with these, so the rule holds from its start-up on.
        """
        parts = urlsplit(self.redis_url)
        url = self.redis_url
        # redis-py's precedence: the URL's user part, then ?username= / ?password=
        user = (
            self.redis_username
            or (unquote(parts.username) if parts.username else None)
            or _query_value(url, "username")
        )
        password = (
            self.redis_password
            or (unquote(parts.password) if parts.password else None)
            or _query_value(url, "password")
        )
        if user and not password:
            raise SecurityConfigError(
                "Redis user given without a password (set REDIS_PASSWORD or put it in REDIS_URL)"
            )
        return RedisCredentials(user or None, password or None)

    def redacted(self) -> dict[str, Any]:
        """Settings safe to log: secrets replaced."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("kafka_security", "web")}
        out["redis_password"] = "***" if self.redis_password else None
        out["dead_letter_redact_key"] = "***" if self.dead_letter_redact_key else None
        out["redis_url"] = redact_url(self.redis_url)
        out["kafka_security"] = {
            k: ("***" if k in _SECRET_KEYS else v) for k, v in self.kafka_security.items()
        }
        out["web"] = self.web.redacted()
        return out
