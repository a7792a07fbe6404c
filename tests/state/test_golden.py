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

Issue 21 (rules governance) changed one rule on purpose: under the average-daily basis
a tier now moves at the local midnight the average crosses a line, without waiting for
an event. The default bank (current basis) is untouched, digests and corpus alike; the
variant's digests were re-recorded, its "after the cut" digest from its v3 corpus with
the current code.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from state.customer import NO_DAY, CustomerState
from state.offers import SERVICE_OFFER_KINDS
from tests.state.golden_bank import DATA_DIR, SCENARIOS, cut_index, messages, read_corpus, run

GOLDEN: dict[str, dict[str, Any]] = {
    "default": {
        "messages": 162476,
        "cut": 101378,
        "whole": {
            "outputs_sha256": "bd6d13e8724d04d8c0d163a901f05b65b32bef195245acc4ccd7aaed6e8ea77a",
            "profile_writes_sha256": (
                "b18429a60d288edd5ac40db1520886a9b7c15874338f5f5ddedb6676573f8e28"
            ),
            "final_profiles_sha256": (
                "91e1cef15d747f6c4975171bbbc46f0a6f52e7f2a1ab05ca9d27bdf93461e03f"
            ),
            "decisions": 3595,
            "profile_writes": 51672,
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
                "ticks:timers_fired": 98,
                "ticks:timers_idle": 357,
                "transactions:applied": 146275,
                "transactions:duplicate": 1472,
                "transactions:late": 4,
            },
        },
        "after_cut": {
            "outputs_sha256": "1c0aa28eaa1c9e0b7082f49fcc26b370e60dc70f27c93ec7eaf1c02e25941885",
            "profile_writes_sha256": (
                "584508490a0185cdb4da543b5dd08afbc31539cb230ed7cdcf9e81bffe344ea3"
            ),
            "final_profiles_sha256": (
                "ddf4d984f714172b820b96ad4dd686bf4a8c8b2b4907d6f954cbfaeee4c0927d"
            ),
            "decisions": 1120,
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
                "ticks:timers_fired": 43,
                "ticks:timers_idle": 110,  # 109 until issue 21 (the due index, a restart)
                "transactions:applied": 55393,
                "transactions:duplicate": 542,
                "transactions:late": 4,
            },
        },
    },
    "variant": {
        "messages": 67322,
        "cut": 30327,
        # re-recorded for issue 21 (its average-daily basis now moves tiers at local
        # midnights without an event, docs/rules.md "Tier policies and time"): +14 timer
        # firings, one decision fewer (207 -> 221, 2,244 -> 2,243 before issue 22), and
        # again when issues 21 and 22 met: the two changes add up (issue 22 alone:
        # 291 firings, 2,402 decisions; both: 305, 2,401)
        "whole": {
            "outputs_sha256": "dbd816211cf1fae085d81dfb572c42905b7c8ba4bb805edf5ef5bef23cc2981b",
            "profile_writes_sha256": (
                "6de07a2f8a09ee10c3533b77bf71a5cb52318ac507a52c242024ce5fd5cf21f9"
            ),
            "final_profiles_sha256": (
                "ad82881a0fa74d32102fe8a102dc5bda1c07bb9a18d6ec6d87404d4da4f7e36f"
            ),
            "decisions": 2401,
            "profile_writes": 12372,
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
                "ticks:timers_fired": 305,
                "ticks:timers_idle": 859,
                "transactions:applied": 59259,
                "transactions:duplicate": 523,
                "transactions:late": 5,
            },
        },
        "after_cut": {
            "outputs_sha256": "eebf7c82d7c0f4be77fdc2b5b3a9a701972f4af5ba403648d123160a7c5c4607",
            "profile_writes_sha256": (
                "b569c071451432eb2bcb8d904ca568410324f2ecc5b6dc48b67e89989b6f97f9"
            ),
            "final_profiles_sha256": (
                "74c55b255ff626ebb513698014531aa4aa15ff232a42cdfd9ca95f1516b2f5dd"
            ),
            "decisions": 1125,
            "profile_writes": 6916,
            "dead_letters": 71,
            "counts": {
                "balances:applied": 3218,
                "balances:duplicate": 23,
                "contacts:applied": 129,
                "contacts:duplicate": 14,
                "customer-profiles:applied": 8,
                "risk-assessments:applied": 8,
                "ticks:applied": 364,
                "ticks:timers_fired": 153,
                "ticks:timers_idle": 487,
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


#: Scenarios whose decisions are still those of the v3 code: the average-daily variant
#: decides differently since issue 21 (tiers move at midnights without an event), so
#: the states the current code builds from its events are not the v3 code's states.
SAME_RULES_AS_V3 = ("default",)


@pytest.mark.parametrize("name", SAME_RULES_AS_V3)
def test_v3_states_upgrade_to_exactly_the_state_the_current_code_builds(name: str) -> None:
    """Every v3 state of the corpus, loaded and written back, is byte for byte the
    state the current code builds from the same events: the upgrade loses nothing.

    Except what v3 never kept, each left out of the comparison as narrowly as it can
    be: the offers made, for attributing offer responses (issue 23; a response to an
    offer made before the upgrade is unmatched); the flow ledger (issue 22: an upgraded
    state starts it at its next event: its months before are unknown, not empty;
    state/contribution.py); and the service contacts v3 withheld for lack of marketing
    consent, which the current code sends, and the priority-branch offers it did not
    know (issue 22) -- their caps (``last_offer`` of those kinds) and the version the
    timers that sent them moved. Everything else must be the same."""
    sc = SCENARIOS[name]
    corpus = read_corpus(DATA_DIR / f"v3-{name}.jsonl.gz")
    _digest, store = run(sc, messages(sc), stop=GOLDEN[name]["cut"])
    assert store.keys() == corpus.keys()
    remembered = booked = serviced = 0
    for key, raw in corpus.items():
        built = CustomerState.from_bytes(store[key])
        remembered += len(built.recent_offers)
        assert not built.offer_outcomes  # no responses in the bank
        built.recent_offers = []
        booked += bool(built.ledger)
        assert built.ledger_from != NO_DAY
        built.ledger, built.ledger_from = [], NO_DAY
        upgraded = CustomerState.from_bytes(raw)
        if upgraded.to_bytes() != built.to_bytes():
            serviced += 1
            assert _known_to_v3(upgraded.last_offer) == _known_to_v3(built.last_offer), key
            upgraded.last_offer, upgraded.version = built.last_offer, built.version
        assert upgraded.to_bytes() == built.to_bytes(), key
    assert remembered  # the bank made offers
    assert booked > len(corpus) // 2  # the ledger was there to be left out
    assert serviced <= len(corpus) // 4


def _known_to_v3(caps: dict[str, int]) -> dict[str, int]:
    """Caps of the offer kinds v3 sent to the same customers."""
    return {k: v for k, v in caps.items() if k not in SERVICE_OFFER_KINDS | {"branch_priority"}}
