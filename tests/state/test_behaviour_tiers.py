"""Tiers by behaviour (issue 22): a tier reached by salary inflow, contribution or an
SME's turnover besides AUM, the deciding criterion named, the band on every basis."""

from __future__ import annotations

import pytest

from state.decisions import TierChange
from state.tiers import AUM, decide, evaluate
from tests.state.helpers import RULES, at, bal, prof, rules_with, run, tx

BEHAVIOUR = """
[tiers.behaviour.affluent]
monthly_inflow_cny = "30000"
contribution_cny = "20000"
[tiers.behaviour.hnw]
contribution_cny = "60000"
sme_turnover_cny = "5000000"
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return rules_with(tmp_path_factory.mktemp("r"), BEHAVIOUR)


def tier_changes(outs) -> list[TierChange]:  # type: ignore[no-untyped-def]
    return [d for o in outs for d in o.decisions if isinstance(d, TierChange)]


def salaried(amounts: list[str]) -> list[object]:
    """A mass customer (100k deposit) first seen 1 January, paid on the 10th."""
    events: list[object] = [prof(at(0)), bal(at(0, 1), "100000.00", account="D1")]
    day = 9
    for amount in amounts:
        events.append(tx(at(day), amount, type="transfer_in", account="D1"))
        day += 31
    return events


def test_default_rules_tier_by_aum_alone() -> None:
    state, outs = run(salaried(["90000.00"] * 4))
    assert state.tier == "mass"
    ev = evaluate(state, RULES)
    assert ev.criterion == AUM and ev.values == ()
    assert all("criterion" not in tc.reason for tc in tier_changes(outs))


def test_a_salary_reaches_affluent_and_the_reason_names_it(rules) -> None:  # type: ignore[no-untyped-def]
    _, outs = run(salaried(["35000.00", "35000.00"]), rules=rules)
    initial, upgrade = tier_changes(outs)
    assert initial.to_tier == "mass" and initial.reason["criterion"] == "aum"
    # 10 February: January is complete, inflow 35,000.00 >= 30,000.00
    assert (upgrade.from_tier, upgrade.to_tier, upgrade.direction) == (
        "mass",
        "affluent",
        "upgrade",
    )
    assert upgrade.ts == at(40)
    assert upgrade.reason["criterion"] == "monthly_inflow"
    assert upgrade.reason["criterion_cny"] == "35000.00"
    assert upgrade.reason["criterion_floor_cny"] == "30000.00"
    assert upgrade.reason["aum_cny"] == "100000.00"  # far below the AUM floor


def test_the_band_applies_to_the_basis_that_decided(rules) -> None:  # type: ignore[no-untyped-def]
    # Jan 35k, Feb 35k, Mar 20k: on 11 April the mean of Jan-Mar is 30,000: holds;
    # then Apr 3k: the mean of Feb-Apr on 12 May is 19,333.33 < 27,000 (30k less 10%)
    state, outs = run(salaried(["35000.00", "35000.00", "20000.00", "3000.00"]), rules=rules)
    assert [tc.direction for tc in tier_changes(outs)] == ["initial", "upgrade"]
    assert state.tier == "affluent"
    state, outs = run([tx(at(131), "1.00", type="deposit", account="D1")], state, rules)
    (down,) = tier_changes(outs)
    assert (down.from_tier, down.to_tier) == ("affluent", "mass")
    assert down.reason["criterion"] == "aum"  # the tier it lands in: AUM's
    # 28,000 a month would have held it: within the band of 30,000
    held, _ = run(salaried(["35000.00", "28000.00", "28000.00", "28000.00"]), rules=rules)
    held, outs = run([tx(at(131), "1.00", type="deposit", account="D1")], held, rules)
    assert held.tier == "affluent" and not tier_changes(outs)


def test_contribution_reaches_hnw(rules) -> None:  # type: ignore[no-untyped-def]
    # a 4,000,000 mortgage at 1.80%: 72,000.00 a year >= 60,000.00; AUM 10,000
    _, outs = run(
        [
            prof(at(0)),
            bal(at(0), "10000.00", account="D1"),
            bal(at(0, 13), "4000000.00", account="L1", product="loan"),
        ],
        rules=rules,
    )
    up = tier_changes(outs)[-1]
    assert (up.to_tier, up.reason["criterion"]) == ("hnw", "contribution")
    assert up.reason["criterion_cny"] == "72150.00"  # 72,000 + 10,000 x 1.50%


def test_turnover_counts_for_sme_customers_only(rules) -> None:  # type: ignore[no-untyped-def]
    def bank(segment: str) -> list[TierChange]:
        events = [prof(at(0), segment=segment), bal(at(0, 1), "1000.00", account="D1")]
        events += [
            tx(at(3 + 31 * m), "450000.00", type="transfer_in", account="D1") for m in range(2)
        ]
        return tier_changes(run(events, rules=rules)[1])

    # SME: January's 450,000 x 12 = 5,400,000 turnover on 3 February: hnw
    assert [(tc.to_tier, tc.reason["criterion"]) for tc in bank("sme")][-1] == (
        "hnw",
        "sme_turnover",
    )
    # retail: the same inflow is 450,000 a month: affluent by salary, no turnover
    assert [(tc.to_tier, tc.reason["criterion"]) for tc in bank("retail")][-1] == (
        "affluent",
        "monthly_inflow",
    )


def test_aum_wins_a_tie_and_the_highest_tier_wins(rules) -> None:  # type: ignore[no-untyped-def]
    state, _ = run(salaried(["35000.00", "35000.00"]), rules=rules)
    state, _ = run([bal(at(41), "600000.00", account="D1")], state, rules)
    ev = evaluate(state, rules)
    assert (ev.rank, ev.criterion) == (1, AUM)  # affluent by AUM and by inflow: AUM
    assert decide("mass", ev, rules) == "affluent"
    assert decide("affluent", ev, rules) is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[tiers.behaviour.affluent]\nsalary_cny = "1"\n', "tiers.behaviour.affluent.salary_cny"),
        (
            '[tiers.behaviour.affluent]\ncontribution = "1"\n',
            "tiers.behaviour.affluent.contribution",
        ),
        ('[tiers.behaviour.hnw]\ncontribution_cny = "0"\n', "tiers.behaviour.hnw.contribution_cny"),
        (
            '[tiers.behaviour.affluent]\ncontribution_cny = "9"\n'
            '[tiers.behaviour.hnw]\ncontribution_cny = "9"\n',
            "tiers.behaviour.hnw.contribution_cny",
        ),
        ('[tiers.behaviour.mass]\ncontribution_cny = "9"\n', "tiers.behaviour.mass"),
        ("[tiers]\ninflow_months = 13\n", "tiers.inflow_months"),
    ],
)
def test_bad_behaviour_rules_stop_start_up_naming_the_key(tmp_path, text: str, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        rules_with(tmp_path, text)
