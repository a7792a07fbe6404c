"""The management report: pure figures, and ``tierstream report`` on profiles in the real Redis.

The simulated profile set is made the way the worker makes it: simulator records through
the same ``BatchProcessor`` and written by the real ``RedisProfileSink`` (Lua, versions,
tier counts), so the report is tested on the data it will meet.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from state.rules import load_rules
from streams import redis_sink
from streams.cli import main
from streams.concentration import aum_top_share, top_share, value_concentration
from streams.metrics import Metrics
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.records import RawMessage
from streams.redis_sink import RedisProfileSink, tier_counts_key
from streams.settings import Settings
from streams.tools.report import (
    LoadedProfiles,
    ProfileError,
    build_report,
    load_profiles,
    lorenz_curve,
    parse_profile,
)
from streams.tools.report_render import CHARTS
from streams.tools.simulator import SimConfig, Simulator
from tests.conftest import MakeTopics
from tests.integration.harness import consume_all

D = Decimal


def _run(argv: list[str]) -> int:
    return main(argv)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# -- pure figures --------------------------------------------------------------------


def test_lorenz_curve_runs_from_zero_to_one_and_bows_below_equality() -> None:
    xs, ys = lorenz_curve([D("1"), D("1"), D("1"), D("97")])
    assert (xs[0], ys[0], xs[-1], ys[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert ys[3] == pytest.approx(0.03)
    assert all(y <= x for x, y in zip(xs, ys, strict=True))


def test_parse_profile_names_the_bad_field() -> None:
    good = {"tier": "hnw", "aum_cny": "1234.50", "p_alive": "0.5", "r_score": "3"}
    row = parse_profile("C1", good)
    assert (row.tier, row.aum, row.p_alive, row.r_score, row.clv) == (
        "hnw",
        D("1234.50"),
        D("0.5"),
        3,
        None,
    )
    for field, bad, msg in [
        ("tier", "gold", "unknown tier 'gold'"),
        ("aum_cny", "12,5", "aum_cny: not a decimal"),
        ("aum_cny", "NaN", "aum_cny: not a finite"),
        ("p_alive", "1.5", "p_alive: must be within"),
        ("r_score", "7", "r_score: must be an RFM score"),
        ("rfm_segment", "vip", "unknown segment 'vip'"),
    ]:
        with pytest.raises(ProfileError, match=msg):
            parse_profile("C1", {**good, field: bad})


def test_build_report_ranks_churn_risk_among_high_value_only() -> None:
    rows = [
        parse_profile("M1", {"tier": "mass", "aum_cny": "10", "p_alive": "0.01"}),
        parse_profile("A1", {"tier": "affluent", "aum_cny": "600000", "p_alive": "0.40"}),
        parse_profile("H1", {"tier": "hnw", "aum_cny": "2000000", "p_alive": "0.20"}),
        parse_profile("H2", {"tier": "hnw", "aum_cny": "3000000", "p_alive": "0.20"}),
        parse_profile("P1", {"tier": "private", "aum_cny": "9000000", "p_alive": ""}),
    ]
    report = build_report(LoadedProfiles(rows=rows))
    # Mass is not high value; unknown P(alive) is not ranked; ties: more AUM at stake first.
    assert [r.customer_id for r in report.churn_risk] == ["H2", "H1", "A1"]
    assert report.tier_counts == {"mass": 1, "affluent": 1, "hnw": 2, "private": 1}
    assert report.total_aum == D("14600010")


def test_build_report_on_contribution_concentration_and_the_valuable_at_risk() -> None:
    def row(cid: str, tier: str, contribution: str, p_alive: str) -> object:
        fields = {"tier": tier, "aum_cny": "1", "p_alive": p_alive}
        return parse_profile(cid, {**fields, "contribution_cny": contribution})

    rows = [
        row("M1", "mass", "50.00", "0.10"),
        row("M2", "mass", "50.00", "0.90"),
        row("M3", "mass", "-20.00", "0.10"),  # an overdraft's interest costs: counts as 0
        row("A1", "affluent", "400.00", "0.29"),
        row("H1", "hnw", "9500.00", "0.95"),
        row("H2", "hnw", "", "0.05"),  # a profile from before contribution: left out
    ]
    report = build_report(LoadedProfiles(rows=rows))  # type: ignore[arg-type]
    assert report.total_contribution == D("9980.00")
    # top 20% of 5 customers with a contribution is 1: 9,500 of 10,000 (negatives as 0)
    assert report.contribution_top20_share == 0.95
    assert report.contribution_by_tier == {
        "mass": D("80.00"),
        "affluent": D("400.00"),
        "hnw": D("9500.00"),
        "private": D("0"),
    }
    xs, ys = report.contribution_lorenz
    assert (xs[-1], ys[-1]) == (1.0, 1.0) and ys[1] == 0.0
    # below the churn line (0.3), most contribution at stake first
    assert [r.customer_id for r in report.contribution_at_risk] == ["A1", "M1", "M3"]


# -- on the real Redis ------------------------------------------------------------------


@pytest.fixture
def simulated_profiles(
    redis_url: str, redis_key_prefix: str
) -> Iterator[dict[bytes, dict[str, str]]]:
    """Profiles of a simulated 400-customer bank, written by the worker's Redis sink."""
    sim = Simulator(SimConfig(customers=400, seed=7, drift_share=0.1, bad_share=0.0))
    msgs = [
        RawMessage(r.topic, 0, i, r.key, r.value, r.ts_ms, r.topic)
        for i, r in enumerate(sim.records(limit=20_000))
    ]
    profiles = BatchProcessor(load_rules(None)).process(msgs, lambda _p, _k: None).profiles

    async def write() -> None:
        client = aioredis.from_url(redis_url)
        try:
            await RedisProfileSink(client, redis_key_prefix, Metrics()).write(profiles)
        finally:
            await client.aclose()

    asyncio.run(write())
    yield profiles


@pytest.fixture
def audit_settings(kafka_bootstrap: str, unique_prefix: str, make_topics: MakeTopics) -> Settings:
    """A deployment's audit topic: every report is audited before it is written."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    make_topics([settings.topic("audit")], partitions=1)
    return settings


def _kafka_flags(settings: Settings) -> list[str]:
    return ["--bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]


@pytest.mark.integration
def test_report_on_simulated_bank_writes_charts_and_summary(
    simulated_profiles: dict[bytes, dict[str, str]],
    redis_url: str,
    redis_key_prefix: str,
    audit_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    r = redis.Redis.from_url(redis_url)
    # One corrupt profile: it must be named in the report, not silently dropped.
    r.hset(f"{redis_key_prefix}customer:BROKEN", mapping={"tier": "gold", "version": "1"})
    counts = {k.decode(): int(v) for k, v in r.hgetall(tier_counts_key(redis_key_prefix)).items()}
    r.close()
    out = tmp_path / "report"

    argv = ["report", "--redis-url", redis_url, "--redis-prefix", redis_key_prefix]
    rc = _run([*argv, "--out", str(out), *_kafka_flags(audit_settings)])

    assert rc == 0
    err = capsys.readouterr().err
    # the export was audited first: one record, how many profiles, by whom, no customer
    [record] = [r["value"] for r in consume_all(audit_settings, "audit")]
    assert record["action"] == "profiles.export" and record["role"] == "cli"
    assert record["count"] == len(simulated_profiles) and record["customer_id"] is None
    assert "skipped profile BROKEN: tier: unknown tier 'gold'" in err
    for chart in CHARTS:
        width, height = _png_size(out / chart)
        assert width >= 400 and height >= 300, chart
    expected_share = top_share([D(p["aum_cny"]) for p in simulated_profiles.values()])
    assert 0.5 < expected_share < 1.0  # the simulator's Pareto bank is concentrated
    md = (out / "report.md").read_text()
    assert f"the top 20% of customers hold {expected_share:.1%}" in md
    assert f"{len(simulated_profiles):,} customers" in md
    # The tier table agrees with the sink's own cluster-wide counts.
    for tier, n in counts.items():
        assert f"| {tier} | {n:,} |" in md
    assert "| BROKEN | tier: unknown tier 'gold'" in md
    contributions = [D(p["contribution_cny"]) for p in simulated_profiles.values()]
    assert f"the top 20% bring {top_share(contributions):.1%} of it" in md
    assert "## Estimated annual contribution by tier (CNY)" in md
    assert "## Top-contribution customers at churn risk" in md
    page = (out / "report.html").read_text()
    assert "<img src='lorenz.png'" in page and "BROKEN" in page
    # The churn list holds only high-value customers, lowest P(alive) first.
    section = md.split("## High-value customers")[1].split("##")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| C")]
    assert lines, "no customer in the churn-risk list"
    p_alive = [D(ln.split("|")[4].strip()) for ln in lines]
    assert p_alive == sorted(p_alive)
    assert all(ln.split("|")[2].strip() in {"affluent", "hnw", "private"} for ln in lines)


@pytest.mark.integration
@pytest.mark.parametrize("scan_count", [7, 1000])
async def test_aum_top_share_gauge_matches_the_report(
    simulated_profiles: dict[bytes, dict[str, str]],
    redis_url: str,
    redis_key_prefix: str,
    scan_count: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exact over every profile, whether the scan takes one step or dozens (7 keys a
    step over 400 profiles among other tests' keys: a cursor bug would lose some)."""
    monkeypatch.setattr(redis_sink, "_SCAN_COUNT", scan_count)
    client = aioredis.from_url(redis_url)
    try:
        gauge = await aum_top_share(client, redis_key_prefix)
        loaded = await load_profiles(client, redis_key_prefix)
    finally:
        await client.aclose()
    assert len(loaded.rows) == len(simulated_profiles) and not loaded.problems
    assert gauge == build_report(loaded).top20_share
    assert gauge == top_share([D(p["aum_cny"]) for p in simulated_profiles.values()])


@pytest.mark.integration
@pytest.mark.parametrize("scan_count", [7, 1000])
async def test_contribution_gauges_match_the_report(
    simulated_profiles: dict[bytes, dict[str, str]],
    redis_url: str,
    redis_key_prefix: str,
    scan_count: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's Pareto gauges (one scan: AUM, contribution, tier) agree with the
    report's figures and with the profiles as written."""
    monkeypatch.setattr(redis_sink, "_SCAN_COUNT", scan_count)
    client = aioredis.from_url(redis_url)
    try:
        found = await value_concentration(client, redis_key_prefix)
        report = build_report(await load_profiles(client, redis_key_prefix))
    finally:
        await client.aclose()
    contributions = [D(p["contribution_cny"]) for p in simulated_profiles.values()]
    assert sum(contributions) > 0
    assert found.contribution_top20_share == report.contribution_top20_share
    assert found.contribution_top20_share == top_share(contributions)
    assert found.aum_top20_share == report.top20_share
    assert {t: v for t, v in found.contribution_by_tier.items()} == {
        t: v for t, v in report.contribution_by_tier.items() if v or t in found.contribution_by_tier
    }
    assert found.unreadable == 0


@pytest.mark.integration
async def test_aum_top_share_leaves_out_unreadable_values_and_says_how_many(
    redis_url: str, redis_key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = aioredis.from_url(redis_url)
    aum = {"A": "900.00", "B": "100.00", "C": "0.00", "D": "0.00", "E": ""}
    aum |= {"X1": "lots", "X2": "NaN"}
    try:
        for cid, value in aum.items():
            await client.hset(f"{redis_key_prefix}customer:{cid}", "aum_cny", value)
        await client.hset(f"{redis_key_prefix}customer:NOAUM", "tier", "mass")
        with caplog.at_level("WARNING", logger="streams.concentration"):
            gauge = await aum_top_share(client, redis_key_prefix)
    finally:
        await client.aclose()
    # A..D are read (E has no AUM yet): the top 20% of 4 is 1 customer, 900 of 1,000.
    assert gauge == 0.9
    assert "2 profiles with an unreadable aum_cny were left out" in caplog.text


@pytest.mark.integration
def test_report_without_an_audit_trail_writes_nothing(
    simulated_profiles: dict[bytes, dict[str, str]],
    redis_url: str,
    redis_key_prefix: str,
    kafka_bootstrap: str,
    unique_prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No audit topic (or no broker): the export is refused, exit 3, no file written."""
    monkeypatch.setenv("TIERSTREAM_AUDIT_TIMEOUT", "2")
    out = tmp_path / "report"
    argv = ["report", "--redis-url", redis_url, "--redis-prefix", redis_key_prefix]
    argv += ["--out", str(out), "--bootstrap", kafka_bootstrap, "--topic-prefix", unique_prefix]
    assert _run(argv) == 3
    assert "nothing written" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.integration
def test_report_without_profiles_says_so(
    redis_url: str, redis_key_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = _run(
        [
            "report",
            "--redis-url",
            redis_url,
            "--redis-prefix",
            redis_key_prefix,
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 1
    assert f"no readable profiles under prefix {redis_key_prefix!r}" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()
