"""``tierstream backtest`` without Kafka: the partitioner, the outputs' contracts, and
the migration matrix against the independent reference of the rules
(tests/reference/rules_ref.py) on a randomized bank, under policies that make time
matter (held downgrades released by the final tick)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.cli import main
from streams.tools.backtest import kafka_partition, murmur2
from tests.reference import rules_ref
from tests.reference.bank import DAY_MS, T0_MS, bank

ORDER = ("transactions", "balances", "customer-profiles", "risk-assessments", "contacts")


def test_murmur2_is_kafkas() -> None:
    # Kafka's UtilsTest: murmur2("21") == -973932308, murmur2("foobar") == -790332482
    assert murmur2(b"21") - (1 << 32) == -973932308
    assert murmur2(b"foobar") - (1 << 32) == -790332482
    assert {kafka_partition(f"C{i:07d}".encode(), 8) for i in range(200)} == set(range(8))


def _write_jsonl(path: Path, events: list[tuple[str, dict[str, Any]]]) -> None:
    with path.open("wb") as f:
        for topic, doc in events:
            f.write(orjson.dumps({"topic": topic, **doc}) + b"\n")


def _head_merge(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """README "Ordering across topics", written out for one partition: each topic in
    file order, the earliest head first, ties to the topic listed first."""
    queues = {t: [e for e in events if e[0] == t] for t in ORDER}
    out = []
    while any(queues.values()):
        heads = [
            (rules_ref.parse_ts(q[0][1]["ts"]), ORDER.index(t), t) for t, q in queues.items() if q
        ]
        _, _, topic = min(heads)
        out.append(queues[topic].pop(0))
    return out


def _run(tmp_path: Path, args: list[str]) -> Path:
    out = tmp_path / "out"
    assert main(["backtest", *args, "--out", str(out)]) == 0
    return out


def _matrix(out: Path) -> Counter[tuple[str, str]]:
    with (out / "migration.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["from_tier", "to_tier", "customers"]  # the contract
    return Counter({(a, b): int(n) for a, b, n in rows[1:]})


NEW = (
    'version = "draft"\n[tiers]\naffluent = "650000"\nhnw = "1200000"\n'
    'min_days_in_tier = 20\ndowngrade_grace_days = 5\nreview = "month"\n'
)


def test_the_matrix_equals_the_independent_references(tmp_path: Path) -> None:
    events = bank(31, customers=150, days=120)
    replay = tmp_path / "bank.jsonl"
    _write_jsonl(replay, events)
    new = tmp_path / "new.toml"
    new.write_text(NEW)
    old = tmp_path / "old.toml"
    old.write_text('version = "old"\n[tiers]\nbasis = "avg_daily"\navg_days = 10\n')
    as_of = T0_MS + 200 * DAY_MS  # 80 days after the last event: held downgrades go
    out = _run(
        tmp_path,
        ["--input", str(replay), "--rules", str(new), "--baseline-rules", str(old),
         "--partitions", "1", "--as-of", rules_ref.format_ts(as_of)],
    )  # fmt: skip
    ordered = _head_merge(events)
    ref_old = rules_ref.run(ordered, old, as_of)
    ref_new = rules_ref.run(ordered, new, as_of)
    expected = Counter(
        (ref_old.tiers[c], ref_new.tiers[c]) for c in ref_old.tiers if c in ref_new.tiers
    )
    got = _matrix(out)
    assert got == expected
    assert sum(n for (a, b), n in got.items() if a == b) > 0  # the diagonal is there
    assert sum(n for (a, b), n in got.items() if a != b) > 10  # and real moves
    # time mattered: without the final tick the draft's held downgrades stay held
    summary = json.loads((out / "summary.json").read_text())
    assert summary["new"]["tier_changes_by_cause"].get("time", 0) > 0
    assert summary["baseline"]["version"] == "old" and summary["new"]["version"] == "draft"
    # the customers who move, with the reference's tiers
    with (out / "changed_customers.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["customer_id", "old_tier", "new_tier", "aum_cny"]
    assert {r["customer_id"]: (r["old_tier"], r["new_tier"]) for r in rows} == {
        c: (ref_old.tiers[c], ref_new.tiers[c])
        for c in ref_old.tiers
        if ref_old.tiers[c] != ref_new.tiers.get(c)
    }


def test_the_same_rules_twice_keep_everyone_on_the_diagonal_and_write_every_output(
    tmp_path: Path,
) -> None:
    replay = tmp_path / "bank.jsonl"
    _write_jsonl(replay, bank(5, customers=40, days=30))
    same = tmp_path / "same.toml"
    same.write_text("")
    out = _run(
        tmp_path, ["--input", str(replay), "--rules", str(same), "--baseline-rules", str(same)]
    )
    assert {p.name for p in out.iterdir()} >= {
        "migration.csv", "summary.json", "report.md", "report.html", "migration.png",
        "changed_customers.csv", "customers.csv",
    }  # fmt: skip
    assert all(a == b for a, b in _matrix(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"] | {"version": ""} == summary["new"] | {"version": ""}
    assert summary["migration"]["up"] == summary["migration"]["down"] == 0
    for key in ("customers_per_tier", "tier_changes_by_direction", "offers_by_kind",
                "alerts_by_kind", "aum_top20_share"):  # fmt: skip
        assert key in summary["new"]
    assert "Migration matrix" in (out / "report.md").read_text()
    assert "<table>" in (out / "report.html").read_text()


def test_bad_rules_are_refused_with_the_loaders_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[tiers]\naffluent = "-1"\n')
    replay = tmp_path / "x.jsonl"
    replay.write_text("")
    assert (
        main(["backtest", "--input", str(replay), "--rules", str(bad), "--out", str(tmp_path)]) == 2
    )
    assert "tiers.affluent" in capsys.readouterr().err
