"""The worker's batch loop: take consumed input, align it, process a batch, commit, ack.

Consumed messages arrive in an ``InputBuffer`` (faust_glue/intake.py: an input buffer
in place of a faust agent's stream, whose per-message machinery cost more CPU than
tierstream's own work). The loop takes everything buffered at once, decodes it
(streams/pipeline/), hands it to the aligner, and processes whatever the aligner
releases, in event-time order, in batches of at most ``batch_max``. Each batch is
decided by the pipeline and made durable by a commit (commit.py: THE write order),
which acknowledges the batch's input messages last; faust then commits their offsets.

No record stops the loop: the pipeline dead-letters whatever one record makes raise
(streams/pipeline/processor.py, the poison-pill boundary), and this loop logs each such
record once, with its coordinates. What stops it on purpose is a partition whose recent
input is mostly bad (``TooMuchBadInput``) and any failure outside a record -- the
store, the broker, Redis -- once the writes' own retries gave up.

Held records are never acknowledged: when the worker gives partitions up (rebalance,
shutdown) they are forgotten and the partitions' next owner reads them from the
committed offsets. A batch that fails stops the process before faust can commit
anything of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP

from schemas.dead_letter import internal_error_text
from schemas.events import TOPIC_TICKS
from streams.metrics import Metrics, observe_many
from streams.pipeline.aligner import GaveUp, InputAligner
from streams.pipeline.bad_input import TooMuchBadInput
from streams.pipeline.input_order import EventTimeRegressions
from streams.pipeline.processor import ALIGNED_TOPICS, BatchProcessor
from streams.pipeline.records import BatchResult, Decoded, RawMessage
from streams.pipeline.state_cache import StateCache
from streams.settings import Settings
from streams.worker.commit import BatchCommit
from streams.worker.end_offsets import EndOffsets
from streams.worker.faust_glue import consumer as glue
from streams.worker.faust_glue.intake import InputBuffer
from streams.worker.faust_glue.table import PartitionedTable
from streams.worker.rules_gate import RulesGate

log = logging.getLogger("tierstream")

#: Exit code when the worker stops itself on purpose (bad input share, topology).
EXIT_FATAL = 3


class BatchLoop:
    """Consumed input -> aligner -> pipeline -> commit -> acknowledgement."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        *,
        buffer: InputBuffer,
        processor: BatchProcessor,
        state_cache: StateCache,
        table: PartitionedTable,
        commit: BatchCommit,
        end_offsets: EndOffsets,
        metrics: Metrics,
        contract: dict[str, str],
        batch_max: int,
        batch_within: float,
        max_idle_ms: int,
        max_lag_wait_ms: int,
        rules_gate: RulesGate | None = None,
        time_regressions: EventTimeRegressions | None = None,
    ) -> None:
        self.app = app
        #: the rules watermark (rules_gate.py): None decides by the start-up rules alone
        self.rules_gate = rules_gate
        #: partitions whose last tick left customers due (the tick budget)
        self.due_backlog: set[int] = set()
        self.settings = settings
        self.buffer = buffer
        self.processor = processor
        self.state_cache = state_cache
        self.table = table
        self.commit = commit
        self.metrics = metrics
        #: full topic name -> contract name, for every consumed topic
        self.contract = contract
        self.batch_max = batch_max
        self.batch_within = batch_within
        self.max_idle_ms = max_idle_ms
        self.max_lag_wait_ms = max_lag_wait_ms
        self.batches_done = 0
        #: (decoded, faust message, monotonic time of intake)
        self.aligner: InputAligner[tuple[Decoded, Any, float]] = InputAligner(
            ALIGNED_TOPICS,
            lambda item: item[0].ts,
            max_idle_ms,
            max_lag_wait_ms,
            on_timeout=self._on_alignment_timeout,
        )
        self._end_offsets = end_offsets
        self._last_seen: dict[tuple[str, int], int] = {}
        self._cache_counted = (0, 0)  # cache hits, misses already in the metrics
        #: Held by a batch in flight; faust's commits and revocations wait for it.
        self.lock = asyncio.Lock()
        #: The consumer generation whose partitions are being given up (revocation
        #: or shutdown): its records are no longer processed here (see _give_up_held).
        self._drained_generation: int | None = None
        self._fresh_ends: dict[tuple[str, int], tuple[int, int | None]] | None = {}
        self._probe_warned_at = 0.0
        #: (reason, partition, inputs) -> (monotonic time last logged, repeats folded)
        self._timeouts_logged: dict[
            tuple[str, int, tuple[tuple[str, bool | None], ...]], tuple[float, int]
        ] = {}
        #: input partitions going back in event time (docs/topics.md, "Order")
        self.time_regressions = time_regressions or EventTimeRegressions()
        self._regression_warned_at = 0.0

    def _on_alignment_timeout(self, gave_up: GaveUp) -> None:
        """The aligner stopped waiting for an input: events may now go out of event-time
        order across topics. Counted, and logged with the partition, the inputs and how
        long it waited, so an operator (or a failed test) can tell such a reorder from a
        bug. Every one is logged; only identical repeats (same partition, inputs and
        reason) within 10 s are folded into the next line's count — the metric of a
        killed worker is gone, its log is not."""
        self.metrics.alignment_timeouts.labels(gave_up.reason).inc()
        key = (gave_up.reason, gave_up.partition, gave_up.waiting_for)
        now = time.monotonic()
        last, folded = self._timeouts_logged.get(key, (0.0, 0))
        if last and now - last < 10:
            self._timeouts_logged[key] = (last, folded + 1)
            return
        self._timeouts_logged[key] = (now, 0)
        known = {False: "has unfetched records", None: "end unknown"}
        inputs = ", ".join(
            f"{t}[{gave_up.partition}] ({known.get(st, st)})" for t, st in gave_up.waiting_for
        )
        log.warning(
            "aligner: gave up waiting for %s after %d ms (%s)%s; events of partition %d may "
            "be applied out of event-time order across topics "
            "(tierstream_aligner_timeouts_total; --max-lag-wait-ms, --max-idle-ms)",
            inputs,
            gave_up.waited_ms,
            gave_up.reason,
            f"; {folded} more like it since the last such line" if folded else "",
            gave_up.partition,
        )

    async def run(self) -> None:
        """Feed the aligner; process whatever it releases; ack only what was processed.

        Takes everything buffered at once (up to ``batch_max``), so batches are small
        when the input is quiet (low latency) and grow under load (fewer, larger
        writes). Messages fetched before a rebalance are skipped: the consumer seeks
        back to the committed offsets and fetches them again for their new owner.
        """
        app = self.app
        # faust's commits wait for a batch in flight; giving partitions up first lets
        # go of held records (faust_glue/consumer.py explains both)
        glue.serialize_commits(app.consumer, self.lock)
        glue.give_up_before_wait_empty(app.consumer, self.lock, self._give_up_held)
        buffer = self.buffer
        batch_max = self.batch_max
        contract = self.contract
        decode = self.processor.decode
        track = glue.tracker(app.consumer)
        last_seen = self._last_seen
        linger = self.batch_within
        observe_order = self.time_regressions.observe
        while True:
            messages = await buffer.take(batch_max)
            if linger > 0 and len(messages) < batch_max:
                await asyncio.sleep(linger)
                if buffer.qsize():
                    messages += await buffer.take(batch_max - len(messages))
            now_ms = int(time.time() * 1000)
            intake = time.monotonic()
            generation = app.consumer_generation_id
            if generation == self._drained_generation:
                continue  # fetched before the partitions went: their next owner reads them
            items = []
            ages = []
            try:
                for m in messages:
                    if m.generation_id != generation:
                        continue
                    if not m.tracked:
                        m.tracked = True
                        track(m)
                    raw = RawMessage(
                        contract[m.topic],
                        m.partition,
                        m.offset,
                        m.key,
                        m.value,
                        int(m.timestamp * 1000),
                        m.topic,
                    )
                    last_seen[(m.topic, m.partition)] = m.offset
                    ages.append(max(0, now_ms - raw.timestamp_ms) / 1000)
                    decoded = decode(raw, now_ms)
                    if decoded.event is not None and raw.topic != TOPIC_TICKS:
                        observe_order(raw.topic, raw.partition, decoded.event.ts)
                    items.append((raw.topic, raw.partition, (decoded, m, intake)))
            except TooMuchBadInput as exc:
                fatal(str(exc))
            observe_many(self.metrics.intake_age, ages)
            self._count_time_regressions()
            self.aligner.add(items)
            await self._release_or_stop()

    async def release_held(self) -> None:
        """Timer: release records whose inputs became caught up or timed out idle."""
        if self.aligner.held:
            await self._release_or_stop()

    async def _release_or_stop(self) -> None:
        """Process what the aligner releases; stop the worker if that fails.

        A record cannot make it fail (the pipeline dead-letters it); what is left is a
        partition of mostly bad input, or the store, the broker or Redis failing past
        the writes' own retries. Nothing of the failed batch was acknowledged, so
        stopping loses nothing; going on would leave a worker that holds partitions
        but no longer consumes.
        """
        try:
            await self._release()
        except TooMuchBadInput as exc:
            fatal(str(exc))
        except Exception as exc:
            log.exception("batch processing failed")
            fatal(f"batch processing failed: {exc!r}")

    def _count_time_regressions(self) -> None:
        """Input records that went back in event time: counted per partition, and
        logged at most every 60 s (the cross-topic order contract is broken upstream)."""
        counts = self.time_regressions.take()
        if not counts:
            return
        metric = self.metrics.time_regressions
        for (topic, partition), n in counts.items():
            metric.labels(topic, str(partition)).inc(n)
        now = time.monotonic()
        if now - self._regression_warned_at > 60:
            self._regression_warned_at = now
            where = ", ".join(f"{t}[{p}] x{n}" for (t, p), n in sorted(counts.items())[:8])
            log.warning(
                "input partitions went back in event time by more than %d ms (%s): "
                "customers' events may be applied out of order across topics -- each "
                "input partition must be produced in event-time order, see docs/topics.md "
                "'Order' (tierstream_input_time_regressions_total)",
                self.time_regressions.tolerance_ms,
                where,
            )

    def _give_up_held(self) -> None:
        """Partitions are being given up (revocation or shutdown; under the lock, the
        batch in flight done and acknowledged): forget every held record, and skip
        records of this consumer generation still arriving. None of them was
        acknowledged: the partitions' next owner (this worker again, after a
        rebalance) reads them from the committed offsets."""
        self._drained_generation = self.app.consumer_generation_id
        self._forget_held()

    def _forget_held(self) -> None:
        held = self.aligner.drain()
        if held:
            glue.untrack(self.app.consumer, (message for _d, message, _t in held))
            log.info("giving up partitions: %d held records left to their next owner", len(held))
        self.metrics.held.set(0)

    async def _release(self) -> None:
        async with self.lock:
            if self.app.consumer_generation_id == self._drained_generation:
                self._forget_held()
                return
            asked_at = int(time.time() * 1000)
            rules_tps = await self._rules_probe()
            self._fresh_ends = await self._probe_inputs(self.aligner.blocking_inputs(), rules_tps)
            before = await self._rules_cutoff(asked_at, rules_tps)
            ready = self.aligner.release(self._caught_up, int(time.time() * 1000), before)
            if not ready:
                return
            now = time.monotonic()
            observe_many(self.metrics.aligner_hold, [now - t for _d, _m, t in ready])
            # A release of records the aligner held can be several intakes' worth: cut
            # it into batches of at most batch_max, each written and acknowledged before
            # the next, so batch duration (and the commit) stays bounded under backlog.
            consumer = self.app.consumer
            step = self.batch_max
            for start in range(0, len(ready), step):
                chunk = ready[start : start + step]

                def acknowledge(chunk: list[tuple[Decoded, Any, float]] = chunk) -> None:
                    for _d, message, _t in chunk:
                        message.ack(consumer)

                await self.handle_batch([d for d, _m, _t in chunk], acknowledge)

    async def _rules_probe(self) -> list[tuple[str, int]]:
        """The rules topic's partitions, when a fresh rules check could release
        something (a task's earliest record is at or after the watermark)."""
        gate = self.rules_gate
        if gate is None or not self.aligner.any_head_from(gate.watermark):
            return []
        try:
            return await gate.topic_partitions()
        except Exception as exc:  # the broker: held, bounded by the gate's max wait
            self._warn_probe(exc)
            return []

    async def _rules_cutoff(self, asked_at: int, rules_tps: list[tuple[str, int]]) -> int | None:
        """Check the rules topic with the ends just probed, and give the release's
        cutoff (rules_gate.py): records stamped at or after it wait."""
        gate = self.rules_gate
        if gate is None:
            return None
        fresh = self._fresh_ends
        if rules_tps and fresh is not None and all(tp in fresh for tp in rules_tps):
            try:
                await gate.check({p: fresh[(t, p)][0] for t, p in rules_tps}, asked_at)
            except Exception as exc:
                self._warn_probe(exc)
        holding = self.aligner.any_head_from(gate.watermark)
        gate.metrics.held.set(self.aligner.held_from(gate.watermark) if holding else 0)
        return gate.cutoff(int(time.time() * 1000), holding)

    def _warn_probe(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._probe_warned_at > 10:
            self._probe_warned_at = now
            log.warning("rules topic unavailable (%s); holding events it could decide", exc)

    async def _probe_inputs(
        self, inputs: list[tuple[str, int]], extra: list[tuple[str, int]] | None = None
    ) -> dict[tuple[str, int], tuple[int, int | None]] | None:
        """End offset and fetch position of the given inputs (one trip to the broker).

        The high watermark cached from the last fetch is not enough: the fetcher leaves
        partitions out of a fetch while records of theirs are still buffered, so their
        cached watermark can be older than a record already received on another input.
        Asked *after* receiving a record, the broker's end offset covers every record
        appended before it on any input — which is what event-time alignment needs.
        Read_committed consumers get the last stable offset. The fetch position tells
        "records exist that this worker has not fetched" (wait for them) apart from
        "everything was fetched" (at most a control marker or records still in a local
        buffer: a short wait). None when the broker did not answer: then no empty input
        counts as caught up (the aligner waits, at most ``max_idle_ms``) — a stale
        watermark would silently reorder events.
        """
        if not inputs and not extra:
            return {}
        names = [(self.settings.topic(t), p) for t, p in inputs] + (extra or [])
        try:
            ends = await self._end_offsets.get(names)
        except Exception as exc:  # broker unreachable: wait (bounded) rather than guess
            now = time.monotonic()
            if now - self._probe_warned_at > 10:
                self._probe_warned_at = now
                log.warning("end offsets unavailable (%s); holding blocked inputs", exc)
            return None
        positions = glue.fetch_positions(self.app, names)
        return {tp: (end, positions.get(tp)) for tp, end in ends.items()}

    def _caught_up(self, topic: str, partition: int) -> bool | None:
        """Has this input partition nothing more to give right now?

        True when the last offset this worker received (or, before the first record,
        the committed position faust seeked to) reached the partition's end offset,
        asked of the broker just before this release; False when the broker holds
        records this worker has not even fetched (they exist and may be earlier: the
        aligner waits for them); None when unknown — the broker did not answer, or
        everything was fetched but not all of it received (a local buffer, or a
        transaction marker that occupies an offset): the aligner waits briefly.
        """
        full = self.settings.topic(topic)
        fresh = self._fresh_ends
        probe = None if fresh is None else fresh.get((full, partition))
        if probe is None:
            return None
        high, position = probe
        seen = self._last_seen.get((full, partition))
        if seen is not None:
            if seen + 1 >= high:
                return True
        else:
            pos = glue.read_offset(self.app.consumer, full, partition)
            if (pos or 0) >= high:
                return True
        if position is not None and position < high:
            return False
        return None

    async def on_revoked(self, revoked: set[TP]) -> None:
        """Drop held records of partitions this worker no longer owns.

        They were never acknowledged; their next owner consumes them from the last
        committed offset.
        """
        async with self.lock:
            tps = [
                (self.contract[tp.topic], tp.partition)
                for tp in revoked
                if tp.topic in self.contract
            ]
            dropped = self.aligner.drop_partitions(tps)
            self.time_regressions.forget(tps)
            for _topic, partition in tps:
                self.processor.due.drop(partition)
            self.state_cache.drop_partitions({p for _t, p in tps})
            for tp in revoked:
                self._last_seen.pop((tp.topic, tp.partition), None)
        if dropped:
            log.info("rebalance: released %d held records of revoked partitions", dropped)

    async def on_assigned(self, assigned: set[TP]) -> None:
        """A partition coming (back) may have moved on elsewhere: its state comes from
        the changelog, not from what this worker remembered of it."""
        async with self.lock:
            self.state_cache.drop_partitions({tp.partition for tp in assigned})
            self.time_regressions.forget(
                (self.contract[tp.topic], tp.partition)
                for tp in assigned
                if tp.topic in self.contract
            )

    async def handle_batch(self, items: list[Decoded], acknowledge: Callable[[], None]) -> None:
        """Decide one batch (the pipeline), commit it (which acknowledges ``items``'
        messages last), and observe it."""
        started = time.perf_counter()
        result = self.processor.apply_ordered(items, self.table.get, self.table.items)
        log_internal_failures(result)
        await self.commit.commit(result, acknowledge)
        emitted_at = time.time()
        for ts in result.decision_event_ts:
            self.metrics.event_latency.observe(max(0.0, emitted_at - ts / 1000))

        self.metrics.observe_batch(result)
        self.due_backlog |= result.due_backlog
        cache = self.state_cache
        lookups = self.metrics.state_cache_lookups
        lookups.labels("hit").inc(cache.hits - self._cache_counted[0])
        lookups.labels("miss").inc(cache.misses - self._cache_counted[1])
        self._cache_counted = (cache.hits, cache.misses)
        self.metrics.state_cache_entries.set(len(cache))
        self.metrics.batch_size.observe(len(items))
        self.metrics.batch_duration.observe(time.perf_counter() - started)
        self.metrics.held.set(self.aligner.held)
        self.batches_done += 1


def log_internal_failures(result: BatchResult) -> None:
    """Log, once each, the records a batch dead-lettered for an unexpected exception:
    where they are (topic, partition, offset) and the traceback, so the bug can be
    fixed and the records replayed from dead-letters."""
    for f in result.internal:
        log.error(
            "dead-lettered %s[%d]@%d (reason class internal, in %s): %s",
            f.topic,
            f.partition,
            f.offset,
            f.stage,
            internal_error_text(f.error),
            exc_info=(type(f.error), f.error, f.error.__traceback__),
        )


def fatal(message: str) -> None:
    """Stop the process now, before faust can commit the failing batch's offsets."""
    log.critical("tierstream stopping: %s", message)
    print(f"tierstream: fatal: {message}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(EXIT_FATAL)
