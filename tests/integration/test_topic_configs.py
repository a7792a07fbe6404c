"""`tierstream topics create` on the real broker: retention and replication read back.

The configs are read with DescribeConfigs, i.e. what the broker will actually apply,
not what the code meant to send.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

from streams.settings import Settings
from streams.topics import DAY_MS, create_topics, topic_specs
from tests.integration.harness import REPO_ROOT


@pytest.fixture
def settings(kafka_bootstrap: str, unique_prefix: str) -> Iterator[Settings]:
    s = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=unique_prefix, partitions=2)
    s = s.with_overrides(app_id=f"{unique_prefix}app")
    yield s
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    names = [t.name for t in topic_specs(s)]
    for fut in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # not created by a refused run
            fut.result()


def _described(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AdminClient(settings.confluent_config())
    res = [ConfigResource(ResourceType.TOPIC, n) for n in names]
    out: dict[str, dict[str, str]] = {}
    for r, fut in admin.describe_configs(res, request_timeout=30).items():
        entries = fut.result()
        out[r.name] = {
            k: entries[k].value for k in ("retention.ms", "retention.bytes", "cleanup.policy")
        }
        # where retention.ms comes from: set on the topic, or the broker's default
        topic_level = entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        out[r.name]["set on topic"] = str(topic_level)
    return out


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TIERSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "TIERSTREAM_PARTITIONS": str(settings.partitions),
        "TIERSTREAM_APP_ID": settings.app_id,
    }
    env.pop("TIERSTREAM_DEV_SINGLE_REPLICA", None)
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "topics", "create", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_topics_create_sets_retention_per_topic_and_guards_the_audit_replicas(
    settings: Settings,
) -> None:
    t = settings.topic
    # a single broker: the audit topic with one replica is refused without the flag,
    # and nothing is created
    refused = _cli(settings)
    assert refused.returncode == 2 and "--dev-single-replica" in refused.stderr
    admin = AdminClient(settings.confluent_config())
    assert t("audit") not in admin.list_topics(timeout=10).topics

    done = _cli(settings, "--dev-single-replica", "--retention", "offers=10d")
    assert done.returncode == 0, done.stderr
    configs = _described(settings, [s.name for s in topic_specs(settings)])
    assert configs[t("audit")]["retention.ms"] == str(400 * DAY_MS)
    assert configs[t("audit")]["retention.bytes"] == "-1"
    assert configs[t("dead-letters")]["retention.ms"] == str(30 * DAY_MS)
    assert configs[t("tier-changes")]["retention.ms"] == str(400 * DAY_MS)
    assert configs[t("alerts")]["retention.ms"] == str(400 * DAY_MS)
    assert configs[t("offer-responses")]["retention.ms"] == str(400 * DAY_MS)  # issue 23
    assert configs[t("offer-responses")]["retention.bytes"] == "-1"
    assert configs[t("offers")]["retention.ms"] == str(10 * DAY_MS)  # the flag
    # inputs keep the broker's default; the outputs' retention is set on the topic
    assert configs[t("transactions")]["set on topic"] == "False"
    assert configs[t("audit")]["set on topic"] == "True"
    assert configs[f"{settings.app_id}-customer-state-changelog"]["cleanup.policy"] == "compact"

    # running it again with another setting converges the existing topics
    again = settings.with_overrides(retention={"audit": 730 * DAY_MS}, dev_single_replica=True)
    status = create_topics(again)
    assert status[t("audit")] == "updated" and status[t("offers")] == "updated"
    assert status[t("dead-letters")] == "exists"
    configs = _described(settings, [t("audit"), t("offers")])
    assert configs[t("audit")]["retention.ms"] == str(730 * DAY_MS)
    assert configs[t("offers")]["retention.ms"] == str(400 * DAY_MS)  # back to the default
    assert set(create_topics(again).values()) == {"exists"}  # idempotent
