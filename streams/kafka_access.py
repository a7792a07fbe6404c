"""Getting the service into a Kafka cluster: a preflight check and the least ACL set.

``kafka_preflight`` connects once before a command starts its work, so wrong
credentials fail in about a second with a message naming the user and mechanism
(never the password) instead of librdkafka's retries and a vague transport error.
``kafka_acls`` derives the ALLOW rules the worker's principal needs from its settings
(docs/security.md shows them; tests/integration/test_security_kafka.py runs the worker
under exactly these).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.events import INPUT_TOPICS, OUTPUT_TOPICS, TICK_TOPICS, TOPIC_AUDIT, TOPIC_RULES
from streams.settings import Settings
from streams.topics import changelog_topic


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
        for t in (*OUTPUT_TOPICS, TOPIC_AUDIT)
    ]
    acls.append(
        KafkaAcl(
            "topic",
            settings.topic(TOPIC_RULES),
            "literal",
            ("READ", "DESCRIBE"),
            "rules versions: read whole by every worker (publishing is an operator's, "
            "with WRITE on it and on audit)",
        )
    )
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


def grant_acls(settings: Settings, user: str, timeout_s: float = 30.0) -> int:
    """ALLOW exactly ``kafka_acls(settings)`` to ``User:<user>`` (an administrator's
    step, idempotent: a binding that exists is created again without change).

    Returns how many bindings were applied. ``tierstream topics create --grant-user``
    runs it after the topics exist, so compose's worker user gets its rights and no more.
    """
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    kinds = {
        "topic": ResourceType.TOPIC,
        "group": ResourceType.GROUP,
        "transactional_id": ResourceType.TRANSACTIONAL_ID,
    }
    patterns = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
    bindings = [
        AclBinding(
            kinds[acl.resource],
            acl.name,
            patterns[acl.pattern],
            f"User:{user}",
            "*",
            AclOperation[op],
            AclPermissionType.ALLOW,
        )
        for acl in kafka_acls(settings)
        for op in acl.operations
    ]
    admin = AdminClient(settings.confluent_config())
    for fut in admin.create_acls(bindings, request_timeout=timeout_s).values():
        fut.result()
    return len(bindings)
