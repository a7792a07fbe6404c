"""The same events decide the same, whatever the state looks like inside.

Golden digests recorded on 2026-12-07 from the code as it was before the v4 state
format (commit 7df4541, format v3; ``python -m tests.state.golden_bank <scenario>``
printed them): every decision record, byte for byte and in order; every Redis profile
write in order; the final profiles; and the result counts, of two seeded banks with
months of history run through ``BatchProcessor`` (tests/state/golden_bank.py says
what is in them). A change to the state's format or data structures must leave all of
them as they are. A change to a rule must not: it changes the digests, and then they
are re-recorded deliberately, with the reason in the commit (issue 22 re-recorded them
for each change of default behaviour; see ``git log`` of this file).

The upgrade tests restore the stored states the v3 code wrote part-way through each
bank (tests/state/data/v3-*.jsonl.gz, written by the same command with ``--corpus``)
and run the rest of the stream on them: a worker upgraded in place restores exactly
such states from its changelog, and must decide what the v3 code would have.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from state.customer import NO_DAY, CustomerState
from tests.state.golden_bank import DATA_DIR, SCENARIOS, cut_index, messages, read_corpus, run

GOLDEN: dict[str, dict[str, Any]] = {
    "default": {
        "messages": 162476,
        "cut": 101378,
        "whole": {
            "outputs_sha256": "abd0db4fbf4d202c470d5a369220e095f0c920de0b202095aafa88abb3a5cc9d",
            "profile_writes_sha256": (
                "d454f98eb098faeab269ae5f2101879a2a15fd50a5f3519bdd727986ab079c1b"
            ),
            "final_profiles_sha256": (
                "4cf5c7781bb8fcc8c78c606e9bd8242eff0637ca5ff52ace82e0e97e73a523fc"
            ),
            "decisions": 3547,
            "profile_writes": 51671,
            "dead_letters": 329,
            "counts": {
                "balances:applied": 11291,
                "balances:duplicate": 109,
                "contacts:applied": 620,
                "contacts:duplicate": 61,
                "customer-profiles:applied": 353,
                "customer-profiles:duplicate": 4,
                "risk-assessments:applied": 349,
                "risk-assessments:duplicate": 9,
                "ticks:applied": 1600,
                "ticks:timers_fired": 82,
                "ticks:timers_idle": 180,
                "transactions:applied": 146275,
                "transactions:duplicate": 1472,
                "transactions:late": 4,
            },
        },
        "after_cut": {
            "outputs_sha256": "b065ed77a8c5ccf78658040833179090152182bc5ca266bef2ec7558f52cdccd",
            "profile_writes_sha256": (
                "54446ab156bd3c4122d464b98e21962676034cfb04f89a6ac9a7565306e20423"
            ),
            "final_profiles_sha256": (
                "81cd238c8984a50d3c7762bb960ddc2cb177bbdd65cf2e7b94dab17a2d5203d7"
            ),
            "decisions": 1100,
            "profile_writes": 20402,
            "dead_letters": 121,
            "counts": {
                "balances:applied": 4091,
                "balances:duplicate": 50,
                "contacts:applied": 227,
                "contacts:duplicate": 26,
                "customer-profiles:applied": 18,
                "risk-assessments:applied": 22,
                "ticks:applied": 604,
                "ticks:timers_fired": 33,
                "ticks:timers_idle": 30,
                "transactions:applied": 55393,
                "transactions:duplicate": 542,
                "transactions:late": 4,
            },
        },
    },
    "variant": {
        "messages": 67322,
        "cut": 30327,
        "whole": {
            "outputs_sha256": "70801e80604bf4072a2ff07aa134d46afab2de97f4bc4c4d8470b01ee4b12be5",
            "profile_writes_sha256": (
                "133e0a7a31071c96564860e792f324758916033fbd5aef8178eb5e6a0ff815ab"
            ),
            "final_profiles_sha256": (
                "7af528c562db5efe4c35cc83f3ff48efcbe34ecad61e1013f7ad3befbeb49964"
            ),
            "decisions": 2244,
            "profile_writes": 12366,
            "dead_letters": 137,
            "counts": {
                "balances:applied": 6081,
                "balances:duplicate": 45,
                "contacts:applied": 243,
                "contacts:duplicate": 26,
                "customer-profiles:applied": 169,
                "risk-assessments:applied": 170,
                "risk-assessments:duplicate": 4,
                "ticks:applied": 660,
                "ticks:timers_fired": 207,
                "ticks:timers_idle": 825,
                "transactions:applied": 59259,
                "transactions:duplicate": 523,
                "transactions:late": 5,
            },
        },
        "after_cut": {
            "outputs_sha256": "68b943460b844595109cea3e2c386851250b9d91be9b20619c651935a18805b9",
            "profile_writes_sha256": (
                "e573301d24996c576c96713ebecd0f887d5bf288afc71458a04d1bc7f671c937"
            ),
            "final_profiles_sha256": (
                "40bfdc6052598204e2c189763d7d678a7ec85f86f39baeecfcd19f242f90e033"
            ),
            "decisions": 1026,
            "profile_writes": 6913,
            "dead_letters": 71,
            "counts": {
                "balances:applied": 3218,
                "balances:duplicate": 23,
                "contacts:applied": 129,
                "contacts:duplicate": 14,
                "customer-profiles:applied": 8,
                "risk-assessments:applied": 8,
                "ticks:applied": 364,
                "ticks:timers_fired": 110,
                "ticks:timers_idle": 462,
                "transactions:applied": 32853,
                "transactions:duplicate": 302,
                "transactions:late": 5,
            },
        },
    },
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_a_bank_with_months_of_history_decides_as_recorded(name: str) -> None:
    sc = SCENARIOS[name]
    msgs = messages(sc)
    assert len(msgs) == GOLDEN[name]["messages"]  # the input itself is unchanged
    assert cut_index(sc, msgs) == GOLDEN[name]["cut"]
    digest, _store = run(sc, msgs)
    assert digest.summary() == GOLDEN[name]["whole"]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_states_written_by_v3_restore_and_decide_as_v3_did(name: str) -> None:
    sc = SCENARIOS[name]
    corpus = read_corpus(DATA_DIR / f"v3-{name}.jsonl.gz")
    assert len(corpus) == sc.customers
    assert {orjson.loads(v)["v"] for v in corpus.values()} == {3}
    for raw in corpus.values():  # each one loads, and survives a round trip
        st = CustomerState.from_bytes(raw)
        assert CustomerState.from_bytes(st.to_bytes()) == st
    msgs = messages(sc)
    digest, _store = run(sc, msgs, store=dict(corpus), start=GOLDEN[name]["cut"])
    assert digest.summary() == GOLDEN[name]["after_cut"]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_v3_states_upgrade_to_exactly_the_state_the_current_code_builds(name: str) -> None:
    """Every v3 state of the corpus, loaded and written back, is byte for byte the
    state the current code builds from the same events: the upgrade loses nothing --
    but the flow ledger (issue 22), which v3 never had: an upgraded state starts it at
    its next event (its months before are unknown, not empty: state/contribution.py)."""
    sc = SCENARIOS[name]
    corpus = read_corpus(DATA_DIR / f"v3-{name}.jsonl.gz")
    _digest, store = run(sc, messages(sc), stop=GOLDEN[name]["cut"])
    assert store.keys() == corpus.keys()
    booked = 0
    for key, raw in corpus.items():
        built = CustomerState.from_bytes(store[key])
        booked += bool(built.ledger)
        assert built.ledger_from != NO_DAY
        built.ledger, built.ledger_from = [], NO_DAY
        assert CustomerState.from_bytes(raw).to_bytes() == built.to_bytes(), key
    assert booked > len(corpus) // 2  # the ledger was there to be left out
