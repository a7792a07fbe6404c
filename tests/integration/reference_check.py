"""A real worker's outputs against the independent reference of the rules, and its dead
letters against what the decoder and the core say of each input record.

The replay oracle (tests/integration/oracle.py) recomputes everything through the
worker's own ``BatchProcessor``: it catches loss, duplication and reordering, never a
wrong rule. These helpers add two views that do not go through the pipeline:

* ``walk`` reads the input topics back and takes each record through the decoder
  (``check_key``, ``decode``/``decode_tick``, the key and partition checks) and the core
  (``apply``, one state per customer) directly, in the order the worker applies them
  (each partition's inputs merged by event time): which records are dead letters, with
  which reason class, and which events the core accepted, in order;
* ``reference_mismatches`` runs those events through tests/reference/rules_ref.py --
  which imports nothing of ``state/`` or ``streams/`` -- and lists where the worker's
  tier changes, offers and alerts differ from it.

Shared by the end-to-end, the fuzz-through-a-worker and the reliability tests (every
failure scenario checks the oracle and then the reference: ``check_against_oracle``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schemas.decoder import DecodeError, Decoder
from schemas.events import TOPIC_TICKS, Tick
from state.core import CoreError, apply
from state.customer import CustomerState
from state.rules import Rules, load_rules
from streams.pipeline.dead_letters import reason_class
from streams.pipeline.processor import merge_by_event_time
from streams.pipeline.records import Decoded, RawMessage
from streams.settings import Settings
from tests.integration.harness import consume_all
from tests.integration.oracle import read_inputs
from tests.reference import rules_ref

#: The output topics the reference decides on.
DECISION_TOPICS = ("tier-changes", "offers", "alerts")

Coordinates = tuple[str, int, int]  # (contract topic, partition, offset)


@dataclass
class Walk:
    """What the decoder and the core say of every input record."""

    #: (topic, partition, offset) -> reason class, for every record they refuse
    dead: dict[Coordinates, str] = field(default_factory=dict)
    #: (topic, JSON document) of every event the decoder passed, in the order the
    #: worker applies them; ``rejected``: event ids of those the core then refused
    decoded: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    #: the same without the core's rejections (what the core applied or deduplicated)
    accepted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ticks: int = 0

    def dead_by_class(self) -> Counter[str]:
        return Counter(self.dead.values())


def walk(msgs: Sequence[RawMessage], rules: Rules, now_ms: int | None = None) -> Walk:
    """Take ``msgs`` (the input topics, as ``oracle.read_inputs`` returns them) through
    the decoder and the core as the worker does, without the worker's pipeline."""
    decoder = Decoder(**rules.limits.decoder())
    now = int(time.time() * 1000) if now_ms is None else now_ms
    out = Walk()
    items = []
    for msg in msgs:
        error: DecodeError | None = decoder.check_key(msg.key)
        event: Any = None
        if error is None and msg.topic == TOPIC_TICKS:
            tick = decoder.decode_tick(msg.value, now)
            if isinstance(tick, DecodeError):
                error = tick
            elif tick.partition != msg.partition:
                error = DecodeError("$.partition", "tick read from another partition")
            else:
                event = tick
        elif error is None:
            decoded = decoder.decode(msg.topic, msg.value, now)
            if isinstance(decoded, DecodeError):
                error = decoded
            elif msg.key != decoded.customer_id.encode():
                error = DecodeError("$.customer_id", "does not match the message key")
            else:
                event = decoded
        if error is not None:
            out.dead[(msg.topic, msg.partition, msg.offset)] = reason_class(error)
        items.append(Decoded(msg, event, error))
    states: dict[str, CustomerState | None] = {}
    for item in merge_by_event_time(items):
        msg, event = item.msg, item.event
        if event is None:
            continue
        if isinstance(event, Tick):  # timers change no account or sum: no rejections
            out.ticks += 1
            continue
        doc = orjson.loads(msg.value or b"")
        out.decoded.append((msg.topic, doc))
        try:
            outcome = apply(states.get(event.customer_id), event, rules)
        except CoreError as err:
            out.dead[(msg.topic, msg.partition, msg.offset)] = reason_class(err)
            out.rejected.append(event.event_id)
            continue
        states[event.customer_id] = outcome.state
        out.accepted.append((msg.topic, doc))
    return out


def walk_inputs(settings: Settings, rules: Rules) -> Walk:
    """``walk`` over everything on the deployment's input topics (and ticks)."""
    return walk(read_inputs(settings), rules)


def decision_mismatches(
    expected: Iterable[dict[str, Any]], actual: Iterable[dict[str, Any]]
) -> list[str]:
    """Output records compared as multisets by ``event_id``, content included: a bank
    whose redeliveries come from beyond the dedup memory makes the core emit the same
    decision twice (as the rules say), so the count of each id must match too."""
    want: dict[str, list[dict[str, Any]]] = {}
    got: dict[str, list[dict[str, Any]]] = {}
    for r in expected:
        want.setdefault(r["event_id"], []).append(r)
    for r in actual:
        got.setdefault(r["event_id"], []).append(r)
    out = []
    for eid in sorted(set(want) | set(got)):
        w, g = want.get(eid, []), got.get(eid, [])
        if len(w) != len(g):
            out.append(f"{eid}: expected {len(w)}, got {len(g)}")
        elif any(x not in g for x in w):
            out.append(f"{eid}: different content: {w[0]} vs {g[0]}")
    return out


def read_decisions(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    """(topic, record) of every tier change, offer and alert the worker emitted."""
    return [(t, r["value"]) for t in DECISION_TOPICS for r in consume_all(settings, t)]


def reference_mismatches(
    w: Walk,
    decisions: Iterable[tuple[str, dict[str, Any]]],
    rules_path: str | Path | None = None,
    *,
    core_rejections: bool = True,
) -> list[str]:
    """Where the worker's decisions differ from the reference's on the walked input.

    ``core_rejections``: the reference sees every decoded event and must reject the
    same ones the core did (unknown currencies: all the reference knows of). Without
    it, it sees only what the core accepted -- for input that reaches the core's other
    bounds (accounts per customer, 64-bit sums), which the reference does not model.
    """
    ref = rules_ref.run(w.decoded if core_rejections else w.accepted, rules_path)
    problems = rules_ref.diff(ref, rules_ref.result_from_records(decisions))
    if core_rejections and ref.rejected != w.rejected:
        problems.append(f"rejected: reference {ref.rejected[:10]}, core {w.rejected[:10]}")
    return problems


def check_against_reference(
    settings: Settings, *, core_rejections: bool = True, redelivered: bool = False
) -> Walk:
    """Assert the worker's decisions on ``settings``' topics equal the reference's;
    returns the walk (for further checks). ``redelivered``: at-least-once outputs may
    hold copies of a decision (same event id; the oracle check asserts they are byte
    for byte the first): the first copy of each counts."""
    rules = load_rules(settings.rules_path)
    w = walk_inputs(settings, rules)
    decisions = read_decisions(settings)
    if redelivered:
        seen: set[tuple[str, str]] = set()
        firsts = []
        for topic, rec in decisions:
            if (topic, rec["event_id"]) not in seen:
                seen.add((topic, rec["event_id"]))
                firsts.append((topic, rec))
        decisions = firsts
    problems = reference_mismatches(
        w, decisions, settings.rules_path, core_rejections=core_rejections
    )
    assert not problems, "worker vs independent reference:\n" + "\n".join(problems)
    return w
