"""``tierstream profile`` (and the live view's report) on the real Redis and broker:
audited like the HTTP API.

It reads Redis with the service's credentials, so it is a way around the HTTP API's
audit; it therefore writes its own ``profile.read`` record (role ``cli``) and shows
nothing unless the broker acknowledged it.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import redis

from streams.cli import main
from streams.redis_sink import profile_key
from streams.settings import Settings
from streams.tools.live_view import ReportWriter
from tests.conftest import MakeTopics
from tests.integration.harness import REPO_ROOT, consume_all

AUDIT_SCHEMA = json.loads((REPO_ROOT / "schemas" / "json" / "audit.schema.json").read_text())


def _argv(settings: Settings, redis_url: str, prefix: str, customer: str) -> list[str]:
    return [
        "profile",
        customer,
        "--redis-url",
        redis_url,
        "--redis-prefix",
        prefix,
        "--bootstrap",
        settings.kafka_bootstrap,
        "--topic-prefix",
        settings.topic_prefix,
    ]


def test_profile_command_is_audited_before_it_prints(
    kafka_bootstrap: str,
    unique_prefix: str,
    make_topics: MakeTopics,
    redis_url: str,
    redis_key_prefix: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    with redis.Redis.from_url(redis_url) as r:
        r.hset(profile_key(redis_key_prefix, "C7"), mapping={"tier": "hnw", "version": "3"})
    monkeypatch.setenv("TIERSTREAM_AUDIT_TIMEOUT", "2")

    # no audit topic yet: nothing is printed, exit 3
    assert main(_argv(settings, redis_url, redis_key_prefix, "C7")) == 3
    out, err = capsys.readouterr()
    assert out == "" and "nothing shown" in err and "hnw" not in err

    make_topics([settings.topic("audit")], partitions=1)
    assert main(_argv(settings, redis_url, redis_key_prefix, "C7")) == 0
    assert json.loads(capsys.readouterr().out)["tier"] == "hnw"
    assert main(_argv(settings, redis_url, redis_key_prefix, "C404")) == 1
    records = [r for r in consume_all(settings, "audit")]
    got = [(r["key"], r["value"]["customer_id"], r["value"]["result"]) for r in records]
    assert got == [(b"C7", "C7", "ok"), (b"C404", "C404", "not_found")]
    for r in records:
        jsonschema.validate(r["value"], AUDIT_SCHEMA)
        assert r["value"]["role"] == "cli" and "@" in r["value"]["principal"]


def test_the_live_views_report_is_an_audited_export_too(
    kafka_bootstrap: str,
    unique_prefix: str,
    make_topics: MakeTopics,
    redis_url: str,
    redis_key_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`r` in the live view writes the management report: without an acknowledged
    ``profiles.export`` record it writes nothing."""
    monkeypatch.setenv("TIERSTREAM_AUDIT_TIMEOUT", "2")
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=unique_prefix,
        redis_url=redis_url,
        redis_key_prefix=redis_key_prefix,
    )
    with redis.Redis.from_url(redis_url) as r:
        for cid, tier, aum in (("C1", "mass", "100.00"), ("C2", "hnw", "2000000.00")):
            r.hset(profile_key(redis_key_prefix, cid), mapping={"tier": tier, "aum_cny": aum})
    out = tmp_path / "report"
    writer = ReportWriter(settings, out)
    writer._write()  # what the thread runs
    assert writer.status.startswith("report not written") and not out.exists()

    make_topics([settings.topic("audit")], partitions=1)
    writer._write()
    assert writer.status.startswith("report written"), writer.status
    [record] = [r["value"] for r in consume_all(settings, "audit")]
    assert (record["action"], record["count"], record["role"]) == ("profiles.export", 2, "cli")
