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

The poison-pill boundary (issue 18; docs/reliability.md, "No record stops a worker"):
whatever decoding or applying one record raises -- decode, ``apply``/``fire_timers``,
``next_due_ms``, its outputs, and at the batch's end ``to_bytes``/``profile_fields`` of
the state it left -- dead-letters that record (class ``internal`` unless it is a
``DecodeError``/``CoreError``) and lists it in ``BatchResult.internal``. The customer's
state, maybe half-changed, is rebuilt as it was before the record: the stored state
(as before this batch) with the customer's earlier records of the batch applied again
(``BatchState.applied``; an erasure among them starts it again from nothing, so erased
data never comes back), and it is left out of the state cache. The store's reads, stored
states and the writes are not records' doing: their failures still stop the worker.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence

import orjson

from schemas.dead_letter import REASON_INTERNAL
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
from streams.pipeline.bad_input import BadInputGuard
from streams.pipeline.dead_letters import dead_letter
from streams.pipeline.due_index import DueIndex
from streams.pipeline.records import (
    BatchResult,
    BatchState,
    Decoded,
    InternalFailure,
    OutputRecord,
    RawMessage,
    StateLoader,
    StateScan,
)
from streams.pipeline.rules_sweeps import RulesSweeps, base_rules, version_at
from streams.pipeline.state_cache import StateCache

#: Tie-break order for equal event times: inputs first, then ticks (a tick at T sees
#: every input stamped T).
ALIGNED_TOPICS = (*INPUT_TOPICS, *TICK_TOPICS)
_TOPIC_RANK = {t: i for i, t in enumerate(ALIGNED_TOPICS)}


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
        #: The rules, or a timeline of versions: each decision by the version at its time.
        self.rules = rules
        self.decoder = decoder or Decoder(**base_rules(rules).limits.decoder())
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
        self.sweeps = RulesSweeps()

    def set_timeline(self, timeline: RulesTimeline) -> list[int]:
        """Decide by ``timeline`` from the next batch on (rules_sweeps.py wakes everyone)."""
        new = self.sweeps.note(self.rules, timeline, self.due.partitions())
        self.rules = timeline
        return new

    def decode(self, msg: RawMessage, now_ms: int | None = None) -> Decoded:
        """Decode and validate one message; checks the key's size and that it is the
        customer id.

        ``now_ms`` is the shell's wall clock, used only to reject events stamped too far
        in the future (the decoder's skew check); decisions never read it. Whatever
        decoding raises is returned as the record's error (a dead letter of class
        ``internal``). Raises ``TooMuchBadInput`` when the partition's recent input is
        mostly bad.
        """
        decoder = self.decoder
        ev: InputEvent | ErasureRequest | Tick | DecodeError | None
        try:
            ev = decoder.check_key(msg.key)
            if ev is None:
                if msg.topic == TOPIC_TICKS:
                    ev = self._decode_tick(msg, now_ms)
                else:
                    ev = decoder.decode(msg.topic, msg.value, now_ms)
                    if not isinstance(ev, DecodeError) and (
                        msg.key is None or msg.key != ev.customer_id.encode()
                    ):
                        ev = DecodeError(
                            "$.customer_id",
                            "does not match the message key "
                            "(inputs must be keyed by customer_id for co-partitioning)",
                        )
        except Exception as exc:  # a bug in decoding: this record only
            self.guard.record(msg.topic, msg.partition, True)
            return Decoded(msg, None, exc)
        if isinstance(ev, DecodeError):
            self.guard.record(msg.topic, msg.partition, True)
            return Decoded(msg, None, ev)
        self.guard.record(msg.topic, msg.partition, False)
        return Decoded(msg, ev, None)

    def _decode_tick(self, msg: RawMessage, now_ms: int | None) -> Tick | DecodeError:
        tick = self.decoder.decode_tick(msg.value, now_ms)
        if not isinstance(tick, DecodeError) and tick.partition != msg.partition:
            tick = DecodeError(
                "$.partition",
                f"tick for partition {tick.partition} read from partition {msg.partition}",
            )
        return tick

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
        (or stop), so that the cache and the store agree -- the poison-pill boundary
        (module docstring) relies on the store holding every state as it was before
        the batch.
        """
        b = BatchState(load, scan)
        result = b.result
        decisions = result.decisions
        dead = b.dead
        states = b.states
        dirty = b.dirty
        applied = b.applied
        rules = self.rules
        due = self.due
        emit = self._emit
        erased = self._erased = {}
        for item in items:
            msg, ev, error = item
            if ev is None:
                assert error is not None
                dead.append(self._dead_letter(msg, error, result, "decode"))
                continue
            if isinstance(ev, Tick):
                self._fire_due(item, ev, b)
                continue
            if isinstance(ev, ErasureRequest):
                self._erase(item, ev, b)
                continue
            key = msg.key
            assert key is not None  # checked by decode()
            partition = msg.partition
            cached = states.get(key)
            st = self._load(partition, key, load) if cached is None else cached[1]
            mark = len(decisions)
            outcome = None
            try:
                outcome = apply(st, ev, rules)
                status = outcome.status
                if status != "duplicate":
                    when = next_due_ms(outcome.state, rules)
                    emit(outcome.decisions, key, partition, ev.ts, result)
            except Exception as exc:
                if outcome is None and isinstance(exc, CoreError):
                    # a rejection: the core changed nothing before raising it
                    dead.append(self._dead_letter(msg, exc, result, "apply"))
                    self.guard.record_late(msg.topic, partition)
                    continue
                self._fail(item, key, exc, "apply", mark, b)
                continue
            result.count(msg.topic, status)
            if outcome.answered is not None:
                result.count_answer(outcome.answered)
            if not outcome.state.version:
                # no customer (a response creates none): nothing to keep or to replay,
                # and nothing held for an erasure later in the batch to report as erased
                continue
            states[key] = (partition, outcome.state)
            applied.append((key, item, status))
            if status == "duplicate":
                continue
            dirty.add(key)
            due.update(partition, key, when)

        self._settle(b)
        result.tombstones = [(p, k) for k, p in erased.items() if k not in dirty]
        result.outputs.extend(b.audit)
        result.outputs.extend(dead)
        if self.cache is not None:
            # a customer one of whose records failed is read from the store next time
            poisoned = b.poisoned
            self.cache.put_all((k, p, raw) for p, k, raw in result.states if k not in poisoned)
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

    def _erase(self, item: Decoded, request: ErasureRequest, b: BatchState) -> None:
        """Forget a customer: its state (a tombstone unless a later event of the batch
        creates it again), its cached copy, its timers and its Redis profile, and write
        the audit record of who asked. Idempotent: a replayed request finds nothing and
        writes the same audit record (result ``not_found``). The audit record is built
        before anything is forgotten, so a failure leaves the customer as it was and
        dead-letters the request (the poison-pill boundary)."""
        msg = item.msg
        key = msg.key
        assert key is not None  # checked by decode()
        p = msg.partition
        result = b.result
        try:
            held = key in b.states
            # taken out of the cache whatever follows: the store still holds the state
            cached = self.cache.take(key) if self.cache is not None else None
            if not held and key not in self._erased:
                held = cached is not None or b.load(p, key) is not None
            record = orjson.dumps(erasure_audit_record(request, held))
        except Exception as exc:
            b.dead.append(self._dead_letter(msg, exc, result, "apply"))
            self.guard.record_late(msg.topic, p)
            return
        b.states.pop(key, None)
        b.dirty.discard(key)
        self._erased[key] = p
        self.due.forget(p, key)
        b.applied.append((key, item, "erased"))
        result.erased_profiles.append(key)
        result.count(msg.topic, "applied")
        outcome = "erased" if held else "not_found"
        result.erasures[outcome] = result.erasures.get(outcome, 0) + 1
        b.audit.append(OutputRecord(TOPIC_AUDIT, key, record, p))

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

    def _fire_due(self, item: Decoded, tick: Tick, b: BatchState) -> None:
        """A tick: fire the timers of every customer of its partition that is due."""
        msg = item.msg
        p, rules, due, states, result = msg.partition, self.rules, self.due, b.states, b.result
        if not due.has(p):
            stored = b.scan(p) if b.scan is not None else ()
            due.rebuild(
                p,
                (
                    (k, next_due_ms(CustomerState.from_bytes(v), rules))
                    for k, v in stored
                    if k not in states
                ),
            )
            due.rebuild(p, ((k, next_due_ms(st, rules)) for k, (q, st) in states.items() if q == p))
        if self.sweeps.pending(p):  # new rules versions: everyone wakes at each switch
            keys = [k for k, _v in (b.scan(p) if b.scan else ()) if k not in self._erased]
            self.sweeps.wake(due, p, keys + [k for k, (q, _s) in states.items() if q == p])
        result.count(TOPIC_TICKS, "applied")
        popped = due.pop_due(p, tick.ts, self.tick_budget)
        if self.tick_budget is not None and due.has_due(p, tick.ts):
            result.due_backlog.add(p)
        for key in popped:
            cached = states.get(key)
            if cached is not None:
                st = cached[1]
            else:
                loaded = self._load(p, key, b.load)
                if loaded is None:
                    continue
                st = loaded
            mark = len(result.decisions)
            try:
                outcome = fire_timers(st, tick.ts, tick.event_id, rules)
                when = next_due_ms(outcome.state, rules)
                if outcome.status == "fired":
                    self._emit(outcome.decisions, key, p, tick.ts, result)
            except Exception as exc:
                # The customer goes back to its state before this tick, and stays out
                # of the due index until its next event: one state the timers cannot
                # handle must not dead-letter every tick of its partition.
                self._withdraw(result, mark)
                self._rebuild(key, p, b)
                b.poisoned.add(key)
                self._dead_tick(item, exc, "fire_timers", b)
                continue
            states[key] = (p, outcome.state)
            b.applied.append((key, item, outcome.status))
            due.update(p, key, when)
            result.count(TOPIC_TICKS, f"timers_{outcome.status}")
            if outcome.status == "fired":
                b.dirty.add(key)

    # -- the poison-pill boundary: a record that raised ---------------------------------

    def _fail(
        self, item: Decoded, key: bytes, exc: Exception, stage: str, mark: int, b: BatchState
    ) -> None:
        """Applying ``item`` to customer ``key`` raised ``exc`` (not a rejection): take
        back what it emitted, rebuild the customer's state as it was before it, and
        dead-letter it."""
        msg = item.msg
        self._withdraw(b.result, mark)
        st = self._rebuild(key, msg.partition, b)
        b.poisoned.add(key)
        if st is not None:
            self.due.update(msg.partition, key, next_due_ms(st, self.rules))
        b.dead.append(self._dead_letter(msg, exc, b.result, stage))
        self.guard.record_late(msg.topic, msg.partition)

    def _dead_tick(self, item: Decoded, exc: Exception, stage: str, b: BatchState) -> None:
        """Dead-letter a tick whose timers raised for a customer -- once, however many
        customers it failed for (the others' timers stand)."""
        msg = item.msg
        if (msg.partition, msg.offset) in b.dead_ticks:
            return
        b.dead_ticks.add((msg.partition, msg.offset))
        counts = b.result.counts
        counts[(TOPIC_TICKS, "applied")] -= 1
        b.dead.append(self._dead_letter(msg, exc, b.result, stage))
        self.guard.record_late(msg.topic, msg.partition)

    @staticmethod
    def _withdraw(result: BatchResult, mark: int) -> None:
        """Take back the decisions emitted from position ``mark`` on (all the failed
        record's: it was being applied when they were emitted)."""
        del result.decisions[mark:]
        del result.outputs[mark:]  # decision outputs only: dead letters join at the end
        del result.decision_event_ts[mark:]

    def _stored(self, partition: int, key: bytes, load: StateLoader) -> CustomerState | None:
        """The customer's state before this batch, from the store (never the cache: a
        cached object is mutated in place by the batch)."""
        raw = load(partition, key)
        return CustomerState.from_bytes(raw) if raw is not None else None

    def _rebuild(self, key: bytes, partition: int, b: BatchState) -> CustomerState | None:
        """The customer's state as it was before the record that just failed: the stored
        state with the customer's earlier applications of this batch applied again
        (each succeeded once; the core is deterministic). Sets it in ``b.states`` and
        whether the batch changed it in ``b.dirty``."""
        rules = self.rules
        st = self._stored(partition, key, b.load)
        changed = False
        for k, (_msg, ev, _e), _status in b.applied:
            if k != key:
                continue
            if isinstance(ev, ErasureRequest):
                st, changed = None, False
                continue
            if isinstance(ev, Tick):
                assert st is not None  # a tick only fires customers that exist
                timers = fire_timers(st, ev.ts, ev.event_id, rules)
                changed = changed or timers.status == "fired"
                st = timers.state
            else:
                assert ev is not None
                outcome = apply(st, ev, rules)
                changed = changed or outcome.status != "duplicate"
                st = outcome.state
        if st is None:
            b.states.pop(key, None)
        else:
            b.states[key] = (partition, st)
        if changed:
            b.dirty.add(key)
        else:
            b.dirty.discard(key)
        return st

    def _settle(self, b: BatchState) -> None:
        """Serialize every state the batch changed and compute its profile (inside the
        boundary: if either raises, the customer's records are replayed one by one to
        find the one that broke it, ``_replay_carefully``)."""
        rules = self.rules
        states = b.states
        out_states = b.result.states
        profiles = b.result.profiles
        for key in list(b.dirty):
            partition, st = states[key]
            try:
                data = st.to_bytes()
                fields = profile_fields(st, version_at(rules, st.updated_at))
            except Exception as exc:
                settled = self._replay_carefully(key, partition, exc, b)
                if settled is None:
                    b.dirty.discard(key)  # nothing to write (an erasure's tombstone stands)
                    continue
                data, fields = settled
            out_states.append((partition, key, data))
            profiles[key] = fields

    def _replay_carefully(
        self, key: bytes, partition: int, exc: Exception, b: BatchState
    ) -> tuple[bytes, dict[str, str]] | None:
        """``to_bytes`` or ``profile_fields`` of a customer's state raised at the batch's
        end. Which of its records made that state is not known, so they are applied
        again from the stored state one by one, each result checked as the batch's end
        checks it: a record after which the check fails is dead-lettered and its effect
        undone; the rest stand, with their decisions (the customer's decisions of this
        batch are withdrawn first, then emitted again as the replay goes). Returns the
        last good state's bytes and profile, or None when no record changed it."""
        rules, result = self.rules, b.result
        counts = result.counts
        keep = [i for i, o in enumerate(result.outputs) if o.key != key]
        result.decisions[:] = [result.decisions[i] for i in keep]
        result.outputs[:] = [result.outputs[i] for i in keep]
        result.decision_event_ts[:] = [result.decision_event_ts[i] for i in keep]
        raw = b.load(partition, key)
        good: bytes | None = raw
        st = CustomerState.from_bytes(raw) if raw is not None else None
        settled: tuple[bytes, dict[str, str]] | None = None
        culprits = 0
        for k, item, status in b.applied:
            if k != key:
                continue
            msg, ev = item.msg, item.event
            if isinstance(ev, ErasureRequest):
                st = good = settled = None
                continue
            tick = isinstance(ev, Tick)
            mark = len(result.decisions)
            try:
                if isinstance(ev, Tick):
                    assert st is not None
                    outcome = fire_timers(st, ev.ts, ev.event_id, rules)
                    changes = outcome.status == "fired"
                else:
                    assert ev is not None
                    outcome = apply(st, ev, rules)
                    changes = outcome.status != "duplicate"
                new = outcome.state
                if changes:
                    data = new.to_bytes()
                    fields = profile_fields(new, version_at(rules, new.updated_at))
                    next_due_ms(new, rules)
                    self._emit(outcome.decisions, key, partition, ev.ts, result)
            except Exception as failed:
                culprits += 1
                self._withdraw(result, mark)
                st = CustomerState.from_bytes(good) if good is not None else None
                if tick:
                    counts[(TOPIC_TICKS, f"timers_{status}")] -= 1
                    self._dead_tick(item, failed, "state", b)
                else:
                    counts[(msg.topic, status)] -= 1
                    b.dead.append(self._dead_letter(msg, failed, result, "state"))
                    self.guard.record_late(msg.topic, msg.partition)
                continue
            st = new
            if outcome.status != status:
                # without the culprit a later record can fare differently (its event id
                # kept in the bounded dedup memory, or pushed out of it): count it anew
                topic = TOPIC_TICKS if tick else msg.topic
                old, now = (
                    (f"timers_{status}", f"timers_{outcome.status}")
                    if tick
                    else (
                        status,
                        outcome.status,
                    )
                )
                counts[(topic, old)] -= 1
                result.count(topic, now)
            if changes:
                good = data
                settled = (data, fields)
        if not culprits:
            # the state is fine when built record by record: not one record's doing
            raise exc
        b.poisoned.add(key)
        if st is None:
            b.states.pop(key, None)
        else:
            b.states[key] = (partition, st)
            self.due.update(partition, key, next_due_ms(st, rules))
        return settled

    def _dead_letter(
        self,
        msg: RawMessage,
        error: DecodeError | Exception,
        result: BatchResult,
        stage: str,
    ) -> OutputRecord:
        """The dead letter of ``msg`` (streams/pipeline/dead_letters.py), counted; one
        of class ``internal`` is listed in ``result.internal`` for the log."""
        source = msg.source_topic or msg.topic
        rc, key, value = dead_letter(
            source,
            msg.partition,
            msg.offset,
            msg.key,
            msg.value,
            msg.timestamp_ms,
            error,
            self.redactor,
        )
        if rc == REASON_INTERNAL:
            assert isinstance(error, Exception)
            result.internal.append(InternalFailure(source, msg.partition, msg.offset, stage, error))
        dk = (msg.topic, rc)
        result.dead_letters[dk] = result.dead_letters.get(dk, 0) + 1
        result.count(msg.topic, "dead_letter")
        return OutputRecord(TOPIC_DEAD_LETTERS, key, value, msg.partition)


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
