"""Suitable recommendations: the catalogue in the rules, the hard suitability filter
(never above the customer's risk type; R1 only without a valid assessment), tier, AUM
and segment minimums, the ranking, and the catalogue/campaign configuration errors."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import SEGMENTS
from state.catalogue import Product
from state.customer import CustomerState
from state.decisions import TIER_RANK, TIERS
from state.recommend import max_product_risk, recommend
from state.rules import DAY_MS
from tests.state.helpers import RULES, assess, at, bal, prof, rules_with, run


def test_default_catalogue_ranks_the_closest_risk_first() -> None:
    s, _ = run([prof(at(0)), assess(at(0), 70), bal(at(1), "1500000")])  # C4, hnw
    assert [p["id"] for p in recommend(s, RULES)] == [
        "EQ-04",
        "WM-03",
        "BOND-02",
        "DEP-TD-12M",
        "MMF-01",
    ]
    assert recommend(s, RULES, limit=1) == [
        {"id": "EQ-04", "name": "Equity fund portfolio", "type": "fund", "risk": "R4"}
    ]


def test_without_a_valid_assessment_only_r1() -> None:
    s, _ = run([prof(at(0)), assess(at(0), 95), bal(at(1), "9000000")])
    assert max_product_risk(s, at(1), RULES) == 5
    expired = at(0) + 365 * DAY_MS
    assert max_product_risk(s, expired, RULES) == 1
    assert {p["risk"] for p in recommend(s, RULES, at_ms=expired)} == {"R1"}
    s2, _ = run([prof(at(0)), bal(at(1), "9000000")])
    assert [p["id"] for p in recommend(s2, RULES)] == ["DEP-TD-12M", "MMF-01"]


def test_segment_and_only_filters() -> None:
    s, _ = run([prof(at(0), segment="sme"), assess(at(0), 10), bal(at(1), "100")])
    assert [p["id"] for p in recommend(s, RULES)] == ["DEP-TD-12M", "MMF-01", "SME-LOAN"]
    assert [p["id"] for p in recommend(s, RULES, only={"SME-LOAN", "EQ-04"})] == ["SME-LOAN"]
    no_profile, _ = run([bal(at(1), "100")])
    assert "SME-LOAN" not in [p["id"] for p in recommend(no_profile, RULES)]
    with pytest.raises(ValueError):
        recommend(s, RULES, limit=-1)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[catalogue]]\nid = "A"\nname = "a"\ntype = "fund"\nrisk = "R9"\n', "catalogue[0].risk"),
        ('[[catalogue]]\nid = "A,B"\nname = "a"\ntype = "fund"\nrisk = "R1"\n', "catalogue[0].id"),
        ('[[catalogue]]\nid = "A"\nname = "a"\ntype = "f"\nrisk = "R1"\ncolour = 1\n', "colour"),
        ('[[catalogue]]\nid = "A"\nname = "a"\nrisk = "R1"\n', "catalogue[0].type"),
        (
            '[[catalogue]]\nid = "A"\nname = "a"\ntype = "f"\nrisk = "R1"\nmin_tier = "gold"\n',
            "catalogue[0].min_tier",
        ),
        (
            '[[campaigns]]\nid = "x"\nstart = 2026-01-02\nend = 2026-01-01\nkind = "k"\n',
            "campaigns[0].end",
        ),
        (
            '[[campaigns]]\nid = "x"\nstart = 2026-01-01\nend = 2026-01-01\nkind = "k"\n'
            'products = ["NOPE"]\n',
            "campaigns[0].products",
        ),
        (
            '[[campaigns]]\nid = "x"\nstart = 2026-01-01\nend = 2026-01-01\nkind = "Bad Kind"\n',
            "campaigns[0].kind",
        ),
        ("[care]\ncampaign_spread_hours = 0\n", "care.campaign_spread_hours"),
        ('[care]\ncontact_outcomes = ["hung_up"]\n', "care.contact_outcomes"),
        ('[care]\ndormancy_min_tier = "gold"\n', "care.dormancy_min_tier"),
    ],
)
def test_bad_catalogue_or_calendar_names_the_key(tmp_path, text: str, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        ValueError, match=r"^rules: .*" + key.replace("[", r"\[").replace("]", r"\]")
    ):
        rules_with(tmp_path, text)


# ------------------------------------------------------------------ property

products = st.builds(
    Product,
    id=st.from_regex(r"P[0-9]{1,4}", fullmatch=True),
    name=st.just("p"),
    type=st.sampled_from(["fund", "bond", "deposit"]),
    risk=st.integers(1, 5),
    min_tier=st.integers(0, 3),
    min_aum_fen=st.integers(0, 10**10),
    segments=st.sampled_from([frozenset(SEGMENTS), frozenset({"retail"}), frozenset({"sme"})]),
    order=st.just(0),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(products, max_size=25, unique_by=lambda p: p.id),
    st.sampled_from([None, *TIERS]),
    st.integers(0, 10**10),
    st.sampled_from([None, "retail", "sme"]),
    st.one_of(st.none(), st.integers(0, 100)),
    st.integers(-400, 400),
)
def test_never_recommends_above_the_customers_level(
    catalogue: list[Product],
    tier: str | None,
    aum: int,
    segment: str | None,
    score: int | None,
    assessed_days_ago: int,
) -> None:
    rules = replace(RULES, catalogue=tuple(replace(p, order=i) for i, p in enumerate(catalogue)))
    now = at(500)
    s = CustomerState("c")
    s.tier, s.aum_fen, s.segment, s.updated_at = tier, aum, segment, now
    if score is not None:
        assessed = now - assessed_days_ago * DAY_MS
        s.risk_score, s.risk_type, s.assessed_ts = (
            score,
            f"C{1 + score // 20 if score < 100 else 5}",
            assessed,
        )
    level = max_product_risk(s, now, rules)
    valid = score is not None and 0 <= assessed_days_ago < 365
    assert level == (int(s.risk_type[1]) if valid and s.risk_type else 1)
    got = recommend(s, rules, limit=100)
    by_id = {p.id: p for p in catalogue}
    for r in got:
        p = by_id[r["id"]]
        assert p.risk <= level  # the suitability rule
        assert p.min_tier <= (TIER_RANK[tier] if tier else 0)
        assert p.min_aum_fen <= aum
        assert segment in p.segments if segment else p.segments == frozenset(SEGMENTS)
    # and nothing eligible is left out, ranked by risk (desc)
    expected = {
        p.id
        for p in catalogue
        if p.risk <= level
        and p.min_tier <= (TIER_RANK[tier] if tier else 0)
        and p.min_aum_fen <= aum
        and (segment in p.segments if segment else p.segments == frozenset(SEGMENTS))
    }
    assert {r["id"] for r in got} == expected
    risks = [int(r["risk"][1]) for r in got]
    assert risks == sorted(risks, reverse=True)
