"""Rules loading: defaults, key-wise overrides, versioning and clear errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from state.rules import load_rules
from tests.state.helpers import DAY, T0, rules_with


def test_defaults_match_the_documented_thresholds() -> None:
    r = load_rules()
    assert r.version == "2026.11"
    assert r.timezone == "Asia/Shanghai"
    assert dict(r.tier_floors) == {
        "mass": Decimal(0),
        "affluent": Decimal(500000),
        "hnw": Decimal(1000000),
        "private": Decimal(6000000),
    }
    assert r.tier_floors_fen == (0, 50_000_000, 100_000_000, 600_000_000)
    assert r.downgrade_band == Decimal("0.10")
    assert r.tier_basis == "current"
    assert r.window_days == 90
    assert r.dedup_size == 256
    # relationship_review is capped at 14 days so private customers' 14-day cadence works
    assert {k: v for k, v in r.offer_cooldown_days.items() if v != 30} == {
        "relationship_review": 14
    }
    assert (r.dormancy_days, r.cadence_days["hnw"], r.cadence_days["private"]) == (90, 30, 14)
    assert r.assessment_validity_days == 365
    assert r.fx["CNY"] == Decimal(1) and r.fx["USD"] == Decimal("7.10")
    assert r.large_outflow_ratio == Decimal("0.5")
    assert r.aum_drop_ratio == Decimal("0.30") and r.aum_drop_days == 7


def test_user_file_overrides_single_keys_and_keeps_the_rest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = rules_with(tmp_path, '[tiers]\naffluent = "300000"\n[fx]\nTHB = "0.20"\n')
    assert r.tier_floors["affluent"] == Decimal(300000)
    assert r.tier_floors["hnw"] == Decimal(1000000)  # untouched default
    assert r.fx["THB"] == Decimal("0.20") and r.fx["USD"] == Decimal("7.10")
    # no version in the user file: default version plus a hash of the effective rules
    assert r.version.startswith("2026.11+") and len(r.version) == len("2026.11+") + 8
    r2 = rules_with(tmp_path, '[tiers]\naffluent = "400000"\n')
    assert r2.version != r.version


def test_user_version_is_used_verbatim(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = rules_with(tmp_path, 'version = "bank-7"\n[tiers]\nbasis = "avg_daily"\n')
    assert r.version == "bank-7"
    assert r.tier_basis == "avg_daily"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[tiers]\naffluant = 1\n", "tiers.affluant"),
        ("colour = 1\n", "colour"),
        ('[tiers]\nbasis = "median"\n', "tiers.basis"),
        ('[tiers]\naffluent = "lots"\n', "tiers.affluent"),
        ('[tiers]\nhnw = "400000"\n', "tiers.hnw"),
        ('[fx]\nUSD = "-1"\n', "fx.USD"),
        ('[fx]\nusd = "7"\n', "fx.usd"),
        ('[fx]\nCNY = "2"\n', "fx.CNY"),
        ("[windows]\ndays = 0\n", "windows.days"),
        ("[rfm]\nfrequency = [5, 2, 10, 20]\n", "rfm.frequency"),
        ('timezone = "Mars/Olympus"\n', "timezone"),
        ('[windows]\nexclude_types = ["tip"]\n', "windows.exclude_types"),
        ("[offers.cooldown_days]\nwealth_products = -1\n", "offers.cooldown_days.wealth_products"),
        ("[value.bg_nbd]\nr = 0\n", "value.bg_nbd.r"),
        ('[alerts]\naum_drop_ratio = "1.5"\n', "alerts.aum_drop_ratio"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text: str, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=f"'{key}'"):
        rules_with(tmp_path, text)


def test_invalid_toml_is_a_value_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="not valid TOML"):
        rules_with(tmp_path, "[tiers\n")


def test_local_day_uses_the_configured_zone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sh = load_rules()
    # 2026-01-01 00:30 in Shanghai is still 2025-12-31 in UTC
    ts = T0 + 30 * 60_000
    assert sh.local_day(ts) == sh.local_day(T0)
    assert sh.local_day(T0 - 1) == sh.local_day(T0) - 1
    utc = rules_with(tmp_path, 'timezone = "UTC"\n')
    assert utc.local_day(ts) == sh.local_day(T0) - 1


def test_local_day_across_a_dst_change(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ny = rules_with(tmp_path, 'timezone = "America/New_York"\n')
    # 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT (07:00 UTC)
    midnight_utc = 1772928000000  # 2026-03-08T00:00Z
    before = midnight_utc + 6 * 3_600_000  # 01:00 EST, Mar 8
    after = midnight_utc + 8 * 3_600_000  # 04:00 EDT, Mar 8
    late_evening = midnight_utc + 27 * 3_600_000 + 59 * 60_000  # 23:59 EDT, Mar 8
    next_day = midnight_utc + 28 * 3_600_000  # 00:00 EDT, Mar 9
    d = ny.local_day(before)
    assert ny.local_day(after) == d
    assert ny.local_day(late_evening) == d
    assert ny.local_day(next_day) == d + 1
    assert ny.local_day(midnight_utc) == d - 1  # 19:00 EST on Mar 7
    assert (next_day - before) < DAY  # the local day was only 23 hours long
