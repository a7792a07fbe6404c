"""The simulated customers' answers to offers (streams/tools/sim_answers.py and
``Simulator.answer``): the rates per kind and tier, one random stream per offer, the
answers in event-time order, and the bank's own records untouched by them."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import orjson
import pytest

from schemas.decoder import DecodeError, Decoder
from schemas.events import OfferResponse
from schemas.timefmt import format_ts_utc
from state.decisions import derive_event_id
from streams.tools.sim_answers import AnswerModel, accept_rate, draw_answer, parse_accept_rate
from streams.tools.simulator import (
    DAY_MS,
    DEFAULT_START_MS,
    LABEL_ANSWER,
    SimConfig,
    Simulator,
    demo_config,
)

RATES = (
    ("*", "*", 0.1),
    ("*", "hnw", 0.2),
    ("wealth_products", "*", 0.3),
    ("wealth_products", "hnw", 0.4),
)


def offer(i: int, kind: str = "wealth_products", tier: str = "hnw", day: int = 3) -> dict[str, Any]:
    cid = f"C{i % 50:07d}"
    return {
        "event_id": derive_event_id(cid, f"cause-{i}", f"offer:{kind}", "r1"),
        "customer_id": cid,
        "ts": format_ts_utc(DEFAULT_START_MS + day * DAY_MS + i * 1000),
        "kind": kind,
        "tier": tier,
        "cause_event_id": f"cause-{i}",
        "rules_version": "r1",
        "reason": {"products": "WM-03,BOND-02"},
    }


def test_parse_accept_rate() -> None:
    assert parse_accept_rate("wealth_products:hnw=0.3") == ("wealth_products", "hnw", 0.3)
    assert parse_accept_rate("*:*=1") == ("*", "*", 1.0)
    for bad in ("wealth_products=0.3", "a:b", "a:b=x", "a:b=1.5", ":b=0.1", "a:=0.1"):
        with pytest.raises(ValueError):
            parse_accept_rate(bad)


def test_the_most_specific_rate_wins() -> None:
    assert accept_rate(RATES, "wealth_products", "hnw") == 0.4
    assert accept_rate(RATES, "wealth_products", "mass") == 0.3
    assert accept_rate(RATES, "sme_credit", "hnw") == 0.2
    assert accept_rate(RATES, "sme_credit", "mass") == 0.1
    assert accept_rate(RATES[1:], "sme_credit", "mass") is None
    assert accept_rate((), "x", "y") is None


@pytest.mark.parametrize(
    ("kind", "tier", "rate"), [("wealth_products", "hnw", 0.4), ("x", "mass", 0.1)]
)
def test_outcomes_follow_the_rates(kind: str, tier: str, rate: float) -> None:
    model = AnswerModel(RATES, decline_share=0.25)
    n = 6000
    seen: Counter[str] = Counter()
    for i in range(n):
        o = offer(i, kind, tier)
        drawn = draw_answer(model, 42, o, 1_000)
        assert drawn is not None
        seen[drawn[1]["outcome"]] += 1
    assert abs(seen["accepted"] / n - rate) < 0.025
    assert abs(seen["declined"] / n - (1 - rate) * 0.25) < 0.025
    assert sum(seen.values()) == n


def test_each_offer_has_its_own_stream_and_a_valid_response() -> None:
    model = AnswerModel(RATES, answer_within_days=3, ignored_after_days=10)
    decoder = Decoder()
    for i in range(300):
        o = offer(i)
        first = draw_answer(model, 42, o, 5_000)
        assert first == draw_answer(model, 42, o, 5_000)  # same offer, same answer
        assert first is not None
        ts, fields = first
        if fields["outcome"] == "ignored":
            assert ts == 5_000 + 10 * DAY_MS
            assert "channel" not in fields
        else:
            assert 5_000 < ts <= 5_000 + 3 * DAY_MS
            assert fields["product_id"] == "WM-03"
        doc = {**fields, "ts": format_ts_utc(ts)}
        ev = decoder.decode("offer-responses", orjson.dumps(doc))
        assert isinstance(ev, OfferResponse), ev
        assert ev.offer_event_id == o["event_id"] and ev.customer_id == o["customer_id"]
    others = [draw_answer(model, 43, offer(i), 5_000) for i in range(50)]
    assert others != [draw_answer(model, 42, offer(i), 5_000) for i in range(50)]


def test_the_answer_options_are_checked() -> None:
    with pytest.raises(ValueError):
        SimConfig(accept_rates=(("*", "*", 1.5),))
    with pytest.raises(ValueError):
        SimConfig(accept_rates=(("*", "*", 0.5),), decline_share=2.0)
    with pytest.raises(ValueError):
        SimConfig(ignored_after_days=0)


def _bank(sim: Simulator, n: int) -> list[tuple[str, str, bytes]]:
    return [(label, r.topic, r.value) for label, r in itertools.islice(sim.labelled(), n)]


def test_without_rates_nothing_is_answered_and_the_bank_is_unchanged() -> None:
    sim = Simulator(SimConfig(customers=40, seed=5))
    assert sim.answer(offer(1)) is False
    assert _bank(sim, 3000) == _bank(Simulator(SimConfig(customers=40, seed=5)), 3000)


def test_answers_come_in_event_time_order_and_leave_the_banks_records_alone() -> None:
    cfg = demo_config(40, seed=5, bad_share=0.02, tick_partitions=2)
    plain = _bank(Simulator(cfg), 4200)
    sim = Simulator(cfg)
    stream = sim.labelled()
    head = [(label, r) for label, r in itertools.islice(stream, 200)]
    offers = [offer(i, "relationship_review", "hnw", day=0) for i in range(30)]
    offers.append({"event_id": "not an offer"})  # skipped
    scheduled = [sim.answer(o) for o in offers]
    assert scheduled == [True] * 30 + [False]
    assert sim.answer(offers[0]) is False  # each offer is answered once
    assert sim.answered == 30
    rest = [(label, r) for label, r in itertools.islice(stream, 4000)]
    answers = [(i, r) for i, (label, r) in enumerate(rest) if label == LABEL_ANSWER]
    assert len(answers) == 30
    decoder = Decoder()
    clock_at_schedule = max(r.ts_ms for label, r in head if label == "tick")
    for i, rec in answers:
        ev = decoder.decode("offer-responses", rec.value)
        assert not isinstance(ev, DecodeError), ev
        assert rec.key == ev.customer_id.encode() and rec.ts_ms == ev.ts
        assert ev.ts > clock_at_schedule  # so it waits for its time among the ticks:
        assert all(r.ts_ms < ev.ts for label, r in rest[:i] if label == "tick")
        assert all(r.ts_ms >= ev.ts for label, r in rest[i:] if label == "tick")
    # and without the answers the stream is the bank's own, record for record
    mine = [(label, r.topic, r.value) for label, r in head + rest if label != LABEL_ANSWER]
    assert mine == plain[: len(mine)]
    assert sim.stats[LABEL_ANSWER] == 30
