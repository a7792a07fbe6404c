"""One batch of raw input messages in, everything the batch decided out.

This is the single place where the data flow of the service happens:

    bytes -> decode/validate (schemas.decoder) -> event-time merge -> core (state.core)
          -> outputs (tier changes, offers, alerts, dead letters) + new states + profiles

It does no I/O itself: the faust worker (streams/worker/loop.py), the benchmark baseline and
the tests feed it messages and a state loader, and then write what it returns. So
the same code decides in every setting, and the worker's adapter stays thin.

Ordering. One customer's events arrive on four co-partitioned topics and Kafka
orders nothing across topics. The order in which events are applied is the head
merge by event time (each topic-partition in offset order, earliest head first —
Kafka Streams' rule): ``merge_by_event_time`` for a batch at hand, and
streams/pipeline/aligner.py across batches in the worker. The core itself makes balances
last-writer-wins by event time, so a late snapshot never rolls a newer balance back.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from schemas.dead_letter import dead_letter_record
from schemas.decoder import DecodeError, Decoder
from schemas.erasure import erasure_audit_record
from schemas.events import (
    INPUT_TOPICS,
    TICK_TOPICS,
    TOPIC_AUDIT,
    TOPIC_DEAD_LETTERS,
    TOPIC_TICKS,
    ErasureRequest,
    InputEvent,
    Tick,
)
from schemas.redaction import Redactor
from state.core import CoreError, apply, fire_timers
from state.customer import CustomerState
from state.decisions import Decision
from state.profile import profile_fields
from state.rules import Rules
from state.timeline import RulesTimeline
from state.triggers import next_due_ms
from streams.pipeline.due_index import DueIndex
from streams.pipeline.state_cache import StateCache

#: Tie-break order for equal event times: inputs first, then ticks (a tick at T sees
#: every input stamped T).
ALIGNED_TOPICS = (*INPUT_TOPICS, *TICK_TOPICS)
_TOPIC_RANK = {t: i for i, t in enumerate(ALIGNED_TOPICS)}


class RawMessage(NamedTuple):
    """A consumed Kafka message, reduced to what processing needs."""

    topic: str  # contract name, without the deployment's topic prefix
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0  # the Kafka record timestamp (dead letters carry it)
    source_topic: str = ""  # the full topic name, prefix included ("" = same as topic)


class OutputRecord(NamedTuple):
    topic: str  # contract name (tier-changes, offers, alerts, dead-letters, audit)
    key: bytes | None
    value: bytes
    source_partition: int = 0  # input partition of the cause (its transaction, under EOS)


class TooMuchBadInput(RuntimeError):
    """Raised when a partition's recent input is mostly bad: stop, don't shovel."""


@dataclass
class BatchResult:
    #: (partition, key, serialized state) for every customer this batch changed.
    states: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    #: Tier changes, offers and alerts in decision order, then dead letters.
    outputs: list[OutputRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    #: customer key -> Redis profile fields, one per changed customer (latest wins).
    profiles: dict[bytes, dict[str, str]] = field(default_factory=dict)
    #: (topic, result) -> count; result is applied | duplicate | late | dead_letter.
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (topic, reason class) -> count of dead letters.
    dead_letters: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Event times (ms) of applied events that produced decisions, for latency.
    decision_event_ts: list[int] = field(default_factory=list)
    #: Partitions whose tick left customers due (the tick budget): tick them again soon.
    due_backlog: set[int] = field(default_factory=set)
    #: Erased customers whose state must leave the changelog and the store: (partition,
    #: key) for a tombstone -- erased and not created again later in the batch.
    tombstones: list[tuple[int, bytes]] = field(default_factory=list)
    #: Customers whose Redis profile is deleted *before* ``profiles`` are written: every
    #: erasure of the batch (a customer created again after it gets a fresh profile).
    erased_profiles: list[bytes] = field(default_factory=list)
    #: Erasures by result: erased (something was held) | not_found.
    erasures: dict[str, int] = field(default_factory=dict)


class BadInputGuard:
    """Tracks the share of bad records over the last ``window`` records per partition.

    A few bad records go to dead letters; a partition whose recent input is mostly bad
    means something upstream is broken (wrong serializer, wrong topic), and dead-lettering
    everything would only hide it. The judgement needs a full window, so a short burst
    at start-up does not stop the worker.
    """

    def __init__(self, window: int = 1000, max_share: float = 0.5) -> None:
        self.window = window
        self.max_share = max_share
        self._seen: dict[tuple[str, int], deque[bool]] = {}
        self._bad: dict[tuple[str, int], int] = {}

    def record(self, topic: str, partition: int, bad: bool) -> None:
        tp = (topic, partition)
        seen = self._seen.get(tp)
        if seen is None:
            seen = self._seen[tp] = deque()
            self._bad[tp] = 0
        seen.append(bad)
        if bad:
            self._bad[tp] += 1
        if len(seen) > self.window and seen.popleft():
            self._bad[tp] -= 1
        if len(seen) >= self.window and self._bad[tp] > self.max_share * len(seen):
            raise TooMuchBadInput(
                f"{self._bad[tp]} of the last {len(seen)} records on {topic}[{partition}] "
                f"were bad (limit {self.max_share:.0%}); stopping instead of dead-lettering "
                "everything — check the producers of this topic (see dead-letters for reasons)"
            )


def reason_class(error: DecodeError | CoreError) -> str:
    """A low-cardinality label for a dead letter's cause (metrics must stay bounded)."""
    if isinstance(error, CoreError):
        return f"invalid:{error.field}"
    r = error.reason
    if error.field == "$":
        for marker, name in (
            ("exceeds", "too_large"),
            ("UTF-8", "invalid_utf8"),
            ("JSON", "invalid_json"),
            ("empty", "empty"),
            ("key", "key_mismatch"),
        ):
            if marker in r:
                return name
        return "invalid_payload"
    if "missing" in r:
        return f"missing:{error.field}"
    return f"invalid:{error.field}"


class Decoded(NamedTuple):
    """A message after decoding: exactly one of ``event`` and ``error`` is set."""

    msg: RawMessage
    event: InputEvent | ErasureRequest | Tick | None
    error: DecodeError | None

    @property
    def ts(self) -> int:
        """Event time for ordering; bad records sort first (they touch no state)."""
        return self.event.ts if self.event is not None else -1


StateLoader = Callable[[int, bytes], bytes | None]
StateScan = Callable[[int], Iterable[tuple[bytes, bytes]]]


class BatchProcessor:
    """Applies batches of raw messages to customer states with the pure core."""

    def __init__(
        self,
        rules: Rules | RulesTimeline,
        decoder: Decoder | None = None,
        guard: BadInputGuard | None = None,
        cache: StateCache | None = None,
        tick_budget: int | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        #: The rules, or a timeline of versions (state/timeline.py): every decision is
        #: made by the version in force at its time.
        self.rules = rules
        self.decoder = decoder or Decoder()
        self.guard = guard or BadInputGuard()
        #: Personal fields out of dead letters (schemas/redaction.py; default fields).
        self.redactor = redactor or Redactor()
        #: States written by earlier batches (streams/pipeline/state_cache.py); None: every
        #: state is loaded from the store (replays, the test oracle).
        self.cache = cache
        #: When each customer's next time trigger is due, per partition (derived state).
        self.due = DueIndex()
        #: Customers erased in the batch being applied (key -> partition): until their
        #: tombstones are written the store still holds their old state, never read again.
        self._erased: dict[bytes, int] = {}
        #: Customers a tick fires at most (None: all that are due); the rest stay due.
        self.tick_budget = tick_budget
        #: partition -> switches of version to make every customer of it due at, once
        #: its next tick comes (set_timeline)
        self._sweeps: dict[int, set[int]] = {}

    def set_timeline(self, timeline: RulesTimeline) -> list[int]:
        """Decide with a new timeline from the next batch on (the worker read a new
        version from the rules topic). Every customer must wake at each switch it did
        not know: customers indexed already are made due at it when their partition's
        next tick comes (a scan of keys, no state read); partitions not indexed yet
        compute it when they are. Returns the new switch times."""
        old = self.rules
        known = (
            {v.effective_from for v in old.versions} if isinstance(old, RulesTimeline) else set()
        )
        new = sorted(v.effective_from for v in timeline.versions if v.effective_from not in known)
        self.rules = timeline
        if new:
            for partition in self.due.partitions():
                self._sweeps.setdefault(partition, set()).update(new)
        return new

    def rules_at(self, ts: int) -> Rules:
        """The rules in force at event time ``ts``."""
        r = self.rules
        return r if isinstance(r, Rules) else r.at(ts)

    def decode(self, msg: RawMessage, now_ms: int | None = None) -> Decoded:
        """Decode and validate one message; checks the key is the customer id.

        ``now_ms`` is the shell's wall clock, used only to reject events stamped too far
        in the future (the decoder's skew check); decisions never read it. Raises
        ``TooMuchBadInput`` when the partition's recent input is mostly bad.
        """
        if msg.topic == TOPIC_TICKS:
            return self._decode_tick(msg, now_ms)
        ev = self.decoder.decode(msg.topic, msg.value, now_ms)
        if not isinstance(ev, DecodeError) and (
            msg.key is None or msg.key != ev.customer_id.encode()
        ):
            ev = DecodeError(
                "$.customer_id",
                "does not match the message key "
                "(inputs must be keyed by customer_id for co-partitioning)",
            )
        if isinstance(ev, DecodeError):
            self.guard.record(msg.topic, msg.partition, True)
            return Decoded(msg, None, ev)
        self.guard.record(msg.topic, msg.partition, False)
        return Decoded(msg, ev, None)

    def _decode_tick(self, msg: RawMessage, now_ms: int | None) -> Decoded:
        tick = self.decoder.decode_tick(msg.value, now_ms)
        if not isinstance(tick, DecodeError) and tick.partition != msg.partition:
            tick = DecodeError(
                "$.partition",
                f"tick for partition {tick.partition} read from partition {msg.partition}",
            )
        if isinstance(tick, DecodeError):
            self.guard.record(msg.topic, msg.partition, True)
            return Decoded(msg, None, tick)
        self.guard.record(msg.topic, msg.partition, False)
        return Decoded(msg, tick, None)

    def process(
        self, messages: Sequence[RawMessage], load: StateLoader, now_ms: int | None = None
    ) -> BatchResult:
        """Decode, merge by event time (all inputs taken as caught up) and apply.

        The worker aligns inputs across batches itself (streams/pipeline/aligner.py) and calls
        ``apply_ordered``; this one-shot form serves the baseline, replays and the
        test oracle, and gives the same order when the whole input is at hand.
        """
        decoded = [self.decode(m, now_ms) for m in messages]
        return self.apply_ordered(merge_by_event_time(decoded), load)

    def apply_ordered(
        self, items: Iterable[Decoded], load: StateLoader, scan: StateScan | None = None
    ) -> BatchResult:
        """Apply decoded messages in the given order.

        ``load(partition, key)`` returns a stored state or None; ``scan(partition)``
        yields every stored (key, state) of a partition, used once per partition to
        build the due index before its first tick. With a cache, a state is taken from
        it before ``load`` is asked, and every state the batch touched goes back into
        it: the caller must write ``result.states`` to the store before the next batch
        (or stop), so that the cache and the store agree.
        """
        result = BatchResult()
        counts = result.counts
        dead: list[OutputRecord] = []
        states: dict[bytes, tuple[int, CustomerState]] = {}
        dirty: set[bytes] = set()
        rules = self.rules
        erased = self._erased = {}
        for msg, ev, error in items:
            if ev is None:
                assert error is not None
                dead.append(self._dead_letter(msg, error, result))
                continue
            if isinstance(ev, Tick):
                self._fire_due(msg, ev, load, scan, states, dirty, result)
                continue
            if isinstance(ev, ErasureRequest):
                self._erase(msg, ev, load, states, dirty, result)
                continue
            key = msg.key
            assert key is not None  # checked by decode()
            cached = states.get(key)
            st = self._load(msg.partition, key, load) if cached is None else cached[1]
            try:
                outcome = apply(st, ev, rules)
            except CoreError as err:
                dead.append(self._dead_letter(msg, err, result))
                continue
            states[key] = (msg.partition, outcome.state)
            ck = (msg.topic, outcome.status)
            counts[ck] = counts.get(ck, 0) + 1
            if outcome.status == "duplicate":
                continue
            dirty.add(key)
            self.due.update(msg.partition, key, next_due_ms(outcome.state, rules))
            self._emit(outcome.decisions, key, msg.partition, ev.ts, result)

        for key in dirty:
            partition, st = states[key]
            result.states.append((partition, key, st.to_bytes()))
            result.profiles[key] = profile_fields(st, self.rules_at(st.updated_at))
        result.tombstones = [(p, k) for k, p in erased.items() if k not in dirty]
        result.outputs.extend(dead)
        if self.cache is not None:
            self.cache.put_all((k, p, raw) for p, k, raw in result.states)
        return result

    def _load(self, partition: int, key: bytes, load: StateLoader) -> CustomerState | None:
        """The customer's state before this batch: cached, else stored, else None
        (also for a customer erased earlier in the batch: the store still holds the
        old state until the tombstone is written)."""
        if key in self._erased:
            return None
        if self.cache is not None:
            cached = self.cache.take(key)
            if cached is not None:
                return CustomerState.from_bytes(cached)
        raw_state = load(partition, key)
        return CustomerState.from_bytes(raw_state) if raw_state is not None else None

    def _erase(
        self,
        msg: RawMessage,
        request: ErasureRequest,
        load: StateLoader,
        states: dict[bytes, tuple[int, CustomerState]],
        dirty: set[bytes],
        result: BatchResult,
    ) -> None:
        """Forget a customer: its state (a tombstone unless a later event of the batch
        creates it again), its cached copy, its timers and its Redis profile, and write
        the audit record of who asked. Idempotent: a replayed request finds nothing and
        writes the same audit record (result ``not_found``)."""
        key = msg.key
        assert key is not None  # checked by decode()
        p = msg.partition
        held = key in states
        cached = self.cache.take(key) if self.cache is not None else None
        if not held and key not in self._erased:
            held = cached is not None or load(p, key) is not None
        states.pop(key, None)
        dirty.discard(key)
        self._erased[key] = p
        self.due.forget(p, key)
        result.erased_profiles.append(key)
        counts = result.counts
        ck = (msg.topic, "applied")
        counts[ck] = counts.get(ck, 0) + 1
        outcome = "erased" if held else "not_found"
        result.erasures[outcome] = result.erasures.get(outcome, 0) + 1
        record = erasure_audit_record(request, held)
        result.outputs.append(OutputRecord(TOPIC_AUDIT, key, orjson.dumps(record), p))

    def _emit(
        self,
        decisions: Iterable[Decision],
        key: bytes,
        partition: int,
        ts: int,
        result: BatchResult,
    ) -> None:
        for d in decisions:
            result.decisions.append(d)
            result.outputs.append(
                OutputRecord(d.topic, key, orjson.dumps(d.to_record()), partition)
            )
            result.decision_event_ts.append(ts)

    def _fire_due(
        self,
        msg: RawMessage,
        tick: Tick,
        load: StateLoader,
        scan: StateScan | None,
        states: dict[bytes, tuple[int, CustomerState]],
        dirty: set[bytes],
        result: BatchResult,
    ) -> None:
        """A tick: fire the timers of every customer of its partition that is due."""
        p, rules, due = msg.partition, self.rules, self.due
        if not due.has(p):
            stored = scan(p) if scan is not None else ()
            due.rebuild(
                p,
                (
                    (k, next_due_ms(CustomerState.from_bytes(v), rules))
                    for k, v in stored
                    if k not in states
                ),
            )
            due.rebuild(p, ((k, next_due_ms(st, rules)) for k, (q, st) in states.items() if q == p))
            # a sweep recorded before the build stays: customers indexed by events before
            # it kept the due time they had then, which may not know the new switches
        sweep = self._sweeps.pop(p, None)
        if sweep:  # new versions: everyone of the partition wakes at each switch
            keys = [k for k, _v in scan(p) if k not in self._erased] if scan is not None else []
            keys += [k for k, (q, _st) in states.items() if q == p]
            for when in sweep:
                due.schedule(p, keys, when)
        counts = result.counts
        counts[(TOPIC_TICKS, "applied")] = counts.get((TOPIC_TICKS, "applied"), 0) + 1
        popped = due.pop_due(p, tick.ts, self.tick_budget)
        if self.tick_budget is not None and due.has_due(p, tick.ts):
            result.due_backlog.add(p)
        for key in popped:
            cached = states.get(key)
            if cached is not None:
                st = cached[1]
            else:
                loaded = self._load(p, key, load)
                if loaded is None:
                    continue
                st = loaded
            outcome = fire_timers(st, tick.ts, tick.event_id, rules)
            states[key] = (p, outcome.state)
            due.update(p, key, next_due_ms(outcome.state, rules))
            ck = (TOPIC_TICKS, f"timers_{outcome.status}")
            counts[ck] = counts.get(ck, 0) + 1
            if outcome.status == "fired":
                dirty.add(key)
                self._emit(outcome.decisions, key, p, tick.ts, result)

    def _dead_letter(
        self, msg: RawMessage, error: DecodeError | CoreError, result: BatchResult
    ) -> OutputRecord:
        if isinstance(error, DecodeError):
            text = error.describe()
        else:
            text = f"$.{error.field}: {error.reason}"
        rc = reason_class(error)
        dk = (msg.topic, rc)
        result.dead_letters[dk] = result.dead_letters.get(dk, 0) + 1
        ck = (msg.topic, "dead_letter")
        result.counts[ck] = result.counts.get(ck, 0) + 1
        record = self.redactor.apply(
            dead_letter_record(
                msg.source_topic or msg.topic,
                msg.partition,
                msg.offset,
                msg.key,
                msg.value,
                text,
                msg.timestamp_ms,
            ),
            msg.value,
        )
        return OutputRecord(TOPIC_DEAD_LETTERS, msg.key, orjson.dumps(record), msg.partition)


def merge_by_event_time(decoded: Iterable[Decoded]) -> Iterator[Decoded]:
    """Merge per-(topic, partition) sequences, taking the earliest head each time.

    Each sequence keeps its offset order (heapq.merge only compares heads); ties go
    to the earlier input in INPUT_TOPICS order, then the lower partition, so the
    result is deterministic and equals what ``InputAligner`` releases when every
    input is caught up.
    """
    seqs: dict[tuple[int, int], list[Decoded]] = {}
    for d in decoded:
        seqs.setdefault((_TOPIC_RANK.get(d.msg.topic, 99), d.msg.partition), []).append(d)
    ordered = [seqs[k] for k in sorted(seqs)]
    if len(ordered) == 1:
        return iter(ordered[0])
    return heapq.merge(*ordered, key=lambda d: d.ts)
