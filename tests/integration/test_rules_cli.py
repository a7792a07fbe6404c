"""``tierstream rules publish | history | show`` on the real broker: what is written,
what is refused (nothing written), what the history says, and the audit record of a
publication (schemas/json/audit.schema.json)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from schemas.decoder import compile_schema, load_schema
from schemas.events import TOPIC_AUDIT
from streams.cli import main
from streams.settings import Settings
from tests.integration.harness import consume_all

GOOD = 'version = "2027.01-cli"\n[tiers]\naffluent = "700000"\n'


def _cli(settings: Settings, *args: str) -> int:
    flags = ["--bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    return main(["rules", *args, *flags])


def test_publish_history_show_and_the_audit_trail(
    service_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = service_settings
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "2027.02-cli"\n[tiers]\naffluent = "lots"\n')

    assert _cli(settings, "history") == 0
    assert "no versions published" in capsys.readouterr().out

    # refused before anything is written: does not load; effective in the past
    assert _cli(settings, "publish", str(bad)) == 2
    assert "affluent" in capsys.readouterr().err
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert _cli(settings, "publish", str(good), "--effective-from", past) == 2
    assert "in the past" in capsys.readouterr().err

    later = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    assert (
        _cli(
            settings,
            "publish",
            str(good),
            "--label",
            "floor 700k",
            "--by",
            "risk-committee",
            "--effective-from",
            later.isoformat(),
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("published 2027.01-cli (offset 0) by risk-committee: takes effect at")
    # the same version again: refused, nothing written
    assert _cli(settings, "publish", str(good)) == 2
    assert "was published before" in capsys.readouterr().err

    assert _cli(settings, "history", "--json") == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["offset"], r["status"], r["version"], r["label"]) for r in rows] == [
        (0, "accepted", "2027.01-cli", "floor 700k")
    ]
    assert rows[0]["published_by"] == "risk-committee"
    assert rows[0]["effective_from"] == later.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    assert _cli(settings, "show", "2027.01-cli") == 0
    shown = capsys.readouterr().out
    assert "version: 2027.01-cli" in shown and 'affluent = "700000"' in shown
    assert _cli(settings, "show") == 0  # in force now: still the start-up rules
    assert "the workers' start-up rules" in capsys.readouterr().out

    audit = [r["value"] for r in consume_all(settings, TOPIC_AUDIT)]
    assert len(audit) == 1  # one per publication, none for the refusals
    validate = compile_schema(load_schema(TOPIC_AUDIT))
    validate(audit[0])
    assert {k: audit[0][k] for k in ("action", "role", "principal", "result")} == {
        "action": "rules.publish",
        "role": "cli",
        "principal": "risk-committee",
        "result": "ok",
    }
    assert audit[0]["rules_version"] == "2027.01-cli" and audit[0]["rules_offset"] == 0
    assert audit[0]["effective_from"] == rows[0]["effective_from"]
