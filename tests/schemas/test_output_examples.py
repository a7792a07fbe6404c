"""The output examples show what the service emits today, not what it once did.

schemas/examples/*.json are the first thing a consumer reads, and they drifted once:
tier changes showed ``aum_eur``/``threshold_eur`` long after the core emitted
``aum_cny``, ``floor_cny``, ``basis`` and ``band``. Schema validation alone could not
catch that (``reason`` is an open object), so every decision example is checked here
against what the core actually emits on a simulated bank it was not shaped for: a
decision of the same topic and kind (direction, for tier changes) with the same reason
fields of the same JSON types, money in the same format, and an ``event_id`` derived
by the same rule. Dead-letter examples must be exactly what ``dead_letter_record``
writes for the message they describe.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from schemas.dead_letter import dead_letter_record, original_key, original_value
from schemas.decoder import DecodeError, Decoder, validate_output
from state.core import CoreError, apply, fire_timers
from state.customer import CustomerState
from state.decisions import derive_event_id
from state.rules import load_rules
from state.triggers import next_due_ms
from streams.tools.simulator import SimConfig, Simulator
from tests.schemas.conftest import load_examples

DECISION_TOPICS = ("tier-changes", "offers", "alerts")
DAY_MS = 86_400_000
MONEY = re.compile(r"^-?[0-9]+\.[0-9]{2}$")

Record = dict[str, Any]
#: (topic, kind) -> every record the core emitted; kind is the direction of a tier change
Emitted = dict[tuple[str, str], list[Record]]


def _kind(record: Record) -> str:
    return str(record.get("kind") or record["direction"])


@pytest.fixture(scope="module")
def emitted() -> Emitted:
    """The core over 60,000 events of a simulated bank, with a daily tick per customer
    whose timers are due (the worker's clock), so timer decisions appear too."""
    rules = load_rules(None)
    decoder = Decoder()
    sim = Simulator(
        SimConfig(
            customers=300,
            seed=7,
            bad_share=0.0,
            duplicate_share=0.0,
            late_share=0.0,
            drift_share=0.3,
        )
    )
    states: dict[str, CustomerState] = {}
    out: Emitted = defaultdict(list)
    last_day: int | None = None
    for rec in sim.records(limit=60_000):
        event = decoder.decode(rec.topic, rec.value, None)
        if isinstance(event, DecodeError):
            continue
        day = event.ts // DAY_MS
        last_day = day if last_day is None else last_day
        while last_day < day:
            last_day += 1
            now = last_day * DAY_MS
            for cid, st in list(states.items()):
                due = next_due_ms(st, rules)
                if due is not None and due <= now:
                    fired = fire_timers(st, now, f"tick-{now}", rules)
                    states[cid] = fired.state
                    for d in fired.decisions:
                        out[d.topic, _kind(d.to_record())].append(d.to_record())
        try:
            outcome = apply(states.get(event.customer_id), event, rules)
        except CoreError:
            continue
        states[event.customer_id] = outcome.state
        for d in outcome.decisions:
            out[d.topic, _kind(d.to_record())].append(d.to_record())
    return dict(out)


def _shape(record: Record) -> dict[str, str]:
    """reason field -> JSON type name."""
    return {k: type(v).__name__ for k, v in record["reason"].items()}


#: How a decision's event_id may be derived: from its cause event, or from the stable
#: trigger id of the timer that fired it (``reason.trigger``).
ID_RULES: dict[str, Callable[[Record], str]] = {
    "cause": lambda r: r["cause_event_id"],
    "trigger": lambda r: str(r["reason"].get("trigger", "")),
}


def _id_kind(record: Record) -> str:
    if "to_tier" in record:
        return f"tier:{record['to_tier']}"
    prefix = "alert" if "severity" in record else "offer"
    return f"{prefix}:{record['kind']}"


def _derived(record: Record, rule: str) -> str:
    return derive_event_id(
        record["customer_id"], ID_RULES[rule](record), _id_kind(record), record["rules_version"]
    )


@pytest.mark.parametrize("topic", DECISION_TOPICS)
def test_every_decision_example_is_shaped_like_what_the_core_emits(
    topic: str, emitted: Emitted
) -> None:
    examples = load_examples(topic)
    assert examples
    for example in examples:
        validate_output(topic, example)
        kind = _kind(example)
        seen = emitted.get((topic, kind))
        assert seen, f"{topic} example of kind {kind!r}: the core emitted no such decision"
        shapes = [_shape(r) for r in seen]
        assert _shape(example) in shapes, (
            f"{topic} {kind} example reason {_shape(example)} is not what the core emits; "
            f"it emits {sorted({tuple(sorted(s)) for s in map(dict.keys, shapes)})}"
        )
        assert set(example) == set(seen[0]), f"{topic} {kind}: top-level fields differ"


@pytest.mark.parametrize("topic", DECISION_TOPICS)
def test_money_in_the_examples_is_written_like_the_core_writes_it(
    topic: str, emitted: Emitted
) -> None:
    """Fields the core always writes as money (two decimals) are money in the examples."""
    for example in load_examples(topic):
        seen = emitted[topic, _kind(example)]
        for name, value in example["reason"].items():
            values = [r["reason"][name] for r in seen if name in r["reason"]]
            if values and all(isinstance(v, str) and MONEY.match(v) for v in values):
                assert isinstance(value, str) and MONEY.match(value), (topic, name, value)


@pytest.mark.parametrize("topic", DECISION_TOPICS)
def test_example_ids_are_derived_like_the_core_derives_them(topic: str, emitted: Emitted) -> None:
    """The rule is taken from the core's own output: the one that reproduces the id of
    every decision of the example's kind; the example's id must follow it too."""
    for example in load_examples(topic):
        seen = emitted[topic, _kind(example)]
        rules = [rule for rule in ID_RULES if all(_derived(r, rule) == r["event_id"] for r in seen)]
        assert rules, f"{topic} {_kind(example)}: no known id rule reproduces the core's ids"
        assert any(_derived(example, rule) == example["event_id"] for rule in rules), example


def test_every_dead_letter_example_is_what_dead_letter_record_writes() -> None:
    """Examples with a redacted or withheld value: tests/schemas/test_redaction.py."""
    for example in load_examples("dead-letters"):
        if "value_redacted" in example or "value_withheld" in example:
            continue
        ts = datetime.fromisoformat(example["ts"].replace("Z", "+00:00"))
        record = dead_letter_record(
            example["source_topic"],
            example["partition"],
            example["offset"],
            original_key(example),
            original_value(example),
            example["error"],
            round(ts.timestamp() * 1000),
        )
        assert record == example
