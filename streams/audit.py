"""The audit trail: who read or exported which customer data, and when.

Records go to the ``audit`` topic (``schemas/json/audit.schema.json``). They are written
by the HTTP API (streams/http/: one record per profile read, denied attempts summed
per client and interval), and by the commands that read Redis directly: ``tierstream
profile`` (one ``profile.read``) and ``tierstream report`` (one ``profiles.export``).
Every writer follows one rule: the data is not handed out unless its record was
acknowledged by the broker (acks=all) — no audit, no answer. So the trail may
over-report (a record whose answer was then lost) but never under-report.

Records hold who (a token's name, or ``user@host`` for a command), when, what and the
result — never profile data and never a token. Single-customer records are keyed by
``customer_id`` (one customer's trail stays ordered in one partition); summaries and
exports by who made them.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from schemas.events import TOPIC_AUDIT
from streams.settings import Settings

#: Contract name of the audit topic (the topic prefix is prepended like for all topics).
AUDIT_TOPIC: Final = TOPIC_AUDIT
ACTION_PROFILE_READ: Final = "profile.read"
ACTION_PROFILES_EXPORT: Final = "profiles.export"
#: Written by the pipeline itself (schemas/erasure.py), listed here with the others.
ACTION_ERASURE: Final = "erasure"
ACTION_RULES_PUBLISH: Final = "rules.publish"
ACTIONS: Final = (ACTION_PROFILE_READ, ACTION_PROFILES_EXPORT, ACTION_ERASURE, ACTION_RULES_PUBLISH)
#: ok, not_found: served (or nothing to serve); denied: 401/403; rate_limited: 429;
#: error: the profile store or the token store failed.
RESULTS: Final = ("ok", "not_found", "denied", "rate_limited", "error")
#: The role of a command run with Redis credentials (``tierstream profile``/``report``).
ROLE_CLI: Final = "cli"
_PRINCIPAL_MAX: Final = 64


class AuditUnavailable(RuntimeError):
    """The audit record could not be written; the audited action must not proceed."""


@dataclass(frozen=True)
class AuditRecord:
    """One audit record; the optional fields are left out of the JSON when None."""

    event_id: str
    ts: str
    principal: str | None
    role: str | None
    action: str
    customer_id: str | None
    result: str
    #: Summaries: how many attempts (and how many distinct customers they named).
    count: int | None = None
    customers: int | None = None
    #: Summaries: the client's address and when the interval began.
    client: str | None = None
    since: str | None = None
    #: rules.publish: the version, when it takes effect, its label and its offset on
    #: the rules topic.
    rules_version: str | None = None
    effective_from: str | None = None
    label: str | None = None
    rules_offset: int | None = None

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"audit result must be one of {RESULTS}, not {self.result!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"audit action must be one of {ACTIONS}, not {self.action!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None or f.default is not None:  # required ones even if null
                out[f.name] = value
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @property
    def key(self) -> bytes:
        """The Kafka key: the customer, else the client, else who made the record."""
        return (self.customer_id or self.client or self.principal or "-").encode("utf-8")


def now_ts() -> str:
    """Wall-clock time, RFC 3339 UTC with milliseconds (an audit is about real time)."""
    return format_wall_ms(datetime.now(UTC))


def format_wall_ms(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def new_event_id() -> str:
    """Random (uuid4 hex): reads are not replayed, so nothing deterministic to derive from."""
    return uuid.uuid4().hex


def profile_read(
    customer_id: str, result: str, principal: str | None, role: str | None
) -> AuditRecord:
    """A new profile.read record of one customer, stamped now."""
    return AuditRecord(
        new_event_id(), now_ts(), principal, role, ACTION_PROFILE_READ, customer_id, result
    )


def profiles_export(count: int, principal: str, role: str) -> AuditRecord:
    """A bulk read of every profile (``tierstream report``): how many, by whom."""
    return AuditRecord(
        new_event_id(),
        now_ts(),
        principal,
        role,
        ACTION_PROFILES_EXPORT,
        None,
        "ok",
        count=count,
    )


def rules_publish(
    principal: str,
    accepted: bool,
    rules_version: str,
    effective_from: str,
    label: str,
    rules_offset: int,
) -> AuditRecord:
    """A rules version published by ``tierstream rules publish``: ok when its readers
    accept the record, error when it was acknowledged but they refuse it."""
    return AuditRecord(
        new_event_id(),
        now_ts(),
        principal,
        ROLE_CLI,
        ACTION_RULES_PUBLISH,
        None,
        "ok" if accepted else "error",
        rules_version=rules_version,
        effective_from=effective_from,
        label=label,
        rules_offset=rules_offset,
    )


def cli_principal() -> str:
    """``user@host`` of the person running a command (at most 64 characters)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        user = "uid-unknown"
    return f"{user}@{socket.gethostname()}"[:_PRINCIPAL_MAX]


def write_record(settings: Settings, record: AuditRecord, timeout_s: float) -> None:
    """Write ``record`` to the audit topic and wait for the broker's acknowledgement.

    For the commands (one record per run): a librdkafka producer, idempotent with
    acks=all (``Settings.producer_config``), whose delivery must arrive within
    ``timeout_s``. Raises ``AuditUnavailable`` otherwise — the caller then shows
    nothing.
    """
    from confluent_kafka import KafkaException, Producer

    ms = max(1, int(timeout_s * 1000))
    errors: list[str] = []
    delivered: list[bool] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append(True)

    try:
        producer = Producer(settings.producer_config(**{"linger.ms": 0, "message.timeout.ms": ms}))
        producer.produce(
            settings.topic(AUDIT_TOPIC),
            key=record.key,
            value=record.to_json(),
            on_delivery=on_delivery,
        )
        producer.flush(timeout_s + 1)
    except (KafkaException, BufferError) as exc:
        raise AuditUnavailable(f"audit record not written: {exc}") from None
    if errors or not delivered:
        why = errors[0] if errors else f"no acknowledgement within {timeout_s:g}s"
        raise AuditUnavailable(f"audit record not written: {why}")


def audit_timeout(settings: Settings) -> float:
    """``TIERSTREAM_AUDIT_TIMEOUT`` as seconds (the HTTP API checks it strictly at
    start-up; a command falls back to the default on a bad value)."""
    try:
        value = float(settings.web.audit_timeout or 5)
    except ValueError:
        return 5.0
    return value if 0 < value <= 120 else 5.0
