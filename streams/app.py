"""The faust-streaming worker: topics, the state table, the processing loop, HTTP, timers.

faust runs the consumer group (rebalancing, fetching, offset commits), the table and
its changelog, and the web server. Consumed input reaches the processing loop through
streams/intake.py (an input buffer in place of a faust agent's stream: faust's
per-message machinery cost more CPU than tierstream's own work). For each batch the
loop:

1. hands the raw messages to ``BatchProcessor`` (decode -> core -> decisions), in the
   event-time order the aligner releases them,
2. produces tier changes, offers, alerts and dead letters and waits for the broker's
   acknowledgement, while writing the changed customers' profiles to Redis (retrying
   while Redis is down),
3. writes the new states to the changelog, waits for its acknowledgement, then to the
   local store,
4. and only then acknowledges the batch's input messages.

That order is what makes at-least-once hold without losing decisions: a crash before
step 3 leaves the state unchanged, so the replayed events decide again and re-emit the
same outputs with the same deterministic ids; a crash after step 3 finds the events
already applied (the core deduplicates them), but their outputs and profiles were
durable before the state was. Nothing is acknowledged before it is written.
Under exactly_once, outputs, changelog and input offsets go into one transaction per
input partition instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.types import TP

from schemas.decoder import Decoder
from schemas.events import INPUT_TOPICS, OUTPUT_TOPICS, TICK_TOPICS, TOPIC_TICKS
from state.customer import CustomerState
from state.decisions import format_ts
from state.profile import profile_fields
from state.rules import Rules, load_rules
from streams.acked_producer import AckedProducer
from streams.aligner import GaveUp, InputAligner
from streams.end_offsets import EndOffsets
from streams.gc_tuning import tune_gc
from streams.intake import (
    BufferedInputTopic,
    InputBuffer,
    install_lean_drain,
    install_rewind_uncommitted,
)
from streams.lean_monitor import LeanMonitor
from streams.metrics import Metrics, observe_many
from streams.processor import (
    ALIGNED_TOPICS,
    BadInputGuard,
    BatchProcessor,
    BatchResult,
    Decoded,
    RawMessage,
    TooMuchBadInput,
)
from streams.recovery import BulkRecovery
from streams.redis_sink import RedisProfileSink, connect
from streams.report import aum_top_share
from streams.settings import Settings
from streams.state_cache import DEFAULT_CAPACITY, StateCache
from streams.table import PartitionedTable
from streams.topics import STATE_TABLE, changelog_topic
from streams.web import register_web

log = logging.getLogger("tierstream")

#: Exit code when the worker stops itself on purpose (bad input share, topology).
EXIT_FATAL = 3


@dataclass
class WorkerTuning:
    """Batching knobs."""

    batch_max: int = 1000
    #: Extra wait for a batch to fill (seconds). 0: a batch is whatever input is
    #: waiting when the previous batch is done — small when quiet, large under load.
    batch_within: float = 0.0
    max_future_skew_ms: int = 5 * 60 * 1000
    bad_window: int = 1000
    bad_max_share: float = 0.5
    #: Longest wait for an input partition whose end offset is unknown (broker did not
    #: answer) or that was fetched but not fully received yet.
    max_idle_ms: int = 2000
    #: Longest wait for an input partition known to hold records not yet fetched.
    #: The default keeps a stuck fetch from stalling a live partition long; the
    #: reliability tests run with it (every release that gives up is logged).
    max_lag_wait_ms: int = 2000
    #: Longest bulk changelog read per rebalance (streams/recovery.py); None: 60% of
    #: faust's broker_request_timeout (faust stops recovery when that runs out);
    #: 0: no bulk read, faust's own per-record recovery only.
    restore_budget_s: float | None = None
    #: How often held records are re-checked when no new input arrives.
    release_interval: float = 0.1
    #: How often to check whether Redis lost this worker's profiles (restart, flush).
    resync_check_interval: float = 5.0
    #: Decoded customer states kept between batches (streams/state_cache.py), about
    #: 5.5 KB each; 0 turns the cache off (every state read from the store).
    state_cache: int = DEFAULT_CAPACITY


def _broker_credentials(settings: Settings) -> Any:
    """faust credentials from the librdkafka-style pass-through settings."""
    sec = settings.kafka_security
    proto = sec.get("security.protocol", "PLAINTEXT").upper()
    ctx: ssl.SSLContext | None = None
    if "SSL" in proto:
        ctx = ssl.create_default_context(cafile=sec.get("ssl.ca.location"))
        if sec.get("ssl.certificate.location"):
            ctx.load_cert_chain(
                sec["ssl.certificate.location"],
                sec.get("ssl.key.location"),
                sec.get("ssl.key.password"),
            )
    if proto.startswith("SASL"):
        return faust.SASLCredentials(
            username=sec.get("sasl.username"),
            password=sec.get("sasl.password"),
            mechanism=sec.get("sasl.mechanism", "PLAIN"),
            ssl_context=ctx,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


class _App(faust.App):
    """faust's App with the worker's consumer intake (streams/intake.py) installed at
    start, before faust's fetcher first drains the consumer."""

    async def on_start(self) -> None:
        await super().on_start()
        install_lean_drain(self.consumer)
        install_rewind_uncommitted(self.consumer)


class TierstreamService:
    """Builds and holds one faust app with everything wired to it."""

    def __init__(
        self,
        settings: Settings,
        rules: Rules | None = None,
        tuning: WorkerTuning | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules or load_rules(settings.rules_path)
        self.tuning = tuning or WorkerTuning()
        self.metrics = Metrics()
        self.state_cache = StateCache(self.tuning.state_cache)
        self.processor = BatchProcessor(
            self.rules,
            Decoder(max_future_skew_ms=self.tuning.max_future_skew_ms),
            BadInputGuard(self.tuning.bad_window, self.tuning.bad_max_share),
            cache=self.state_cache if self.tuning.state_cache else None,
        )
        self.redis = connect(settings.redis_url, settings.redis_password, settings.redis_username)
        self.sink = RedisProfileSink(self.redis, settings.redis_key_prefix, self.metrics)
        self.batches_done = 0
        #: (decoded, faust message, monotonic time of intake)
        self.aligner: InputAligner[tuple[Decoded, Any, float]] = InputAligner(
            ALIGNED_TOPICS,
            lambda item: item[0].ts,
            self.tuning.max_idle_ms,
            self.tuning.max_lag_wait_ms,
            on_timeout=self._on_alignment_timeout,
        )
        self._last_seen: dict[tuple[str, int], int] = {}
        self._cache_counted = (0, 0)  # cache hits, misses already in the metrics
        self._lock = asyncio.Lock()
        #: The consumer generation whose partitions are being given up (revocation
        #: or shutdown): its records are no longer processed here (see _drain_first).
        self._drained_generation: int | None = None
        self._fresh_ends: dict[tuple[str, int], tuple[int, int | None]] | None = {}
        self._eos = settings.processing_guarantee == "exactly_once"
        self._output_names = {t: settings.topic(t) for t in OUTPUT_TOPICS}
        self._changelog_name = changelog_topic(settings)
        self._end_offsets = EndOffsets(settings.confluent_config(), read_committed=self._eos)
        self._probe_warned_at = 0.0
        #: (reason, partition, inputs) -> (monotonic time last logged, repeats folded)
        self._timeouts_logged: dict[
            tuple[str, int, tuple[tuple[str, bool | None], ...]], tuple[float, int]
        ] = {}
        #: at_least_once writes (exactly_once sends through faust's transactions).
        self._acked = AckedProducer(settings.producer_config(**{"linger.ms": 1}))
        self.app = self._build_app()

    # -- construction ---------------------------------------------------------------

    def _build_app(self) -> faust.App:
        s = self.settings
        brokers = [f"kafka://{b.strip()}" for b in s.kafka_bootstrap.split(",") if b.strip()]
        app = _App(
            s.app_id,
            broker=brokers,
            broker_credentials=_broker_credentials(s),
            store=s.store,
            datadir=s.data_dir,
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            topic_disable_leader=True,
            processing_guarantee=s.processing_guarantee,
            consumer_auto_offset_reset="earliest",
            web_host=s.web_host,
            web_bind=s.web_host,
            web_port=s.web_port,
            web_in_thread=False,
            producer_acks=-1,
            producer_linger_ms=5,
            broker_commit_every=10_000,
            broker_commit_interval=1.0,
            stream_buffer_maxsize=self.tuning.batch_max * 4,
            table_standby_replicas=s.standby_replicas,
            broker_session_timeout=s.session_timeout,
            broker_heartbeat_interval=min(3.0, s.session_timeout / 5),
            Monitor=LeanMonitor,
        )
        self._contract = {s.topic(t): t for t in (*INPUT_TOPICS, *TICK_TOPICS)}
        self.input_topic = BufferedInputTopic(
            app,
            topics=list(s.consumed_topics),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.input_topic.buffer = self.input_buffer = InputBuffer(self.tuning.batch_max * 4)
        # Registered before start, where an agent would register its channel: the
        # conductor subscribes what it holds once agents and tables have started.
        app.topics._topics.add(self.input_topic)  # type: ignore[attr-defined]
        table = app.Table(
            STATE_TABLE,
            key_type=bytes,
            value_type=bytes,
            partitions=s.partitions,
        )
        # faust derives table serializers from model types only; state is opaque bytes
        # (the core's own versioned format), so store and changelog them raw.
        table.key_serializer = "raw"  # type: ignore[attr-defined]
        table.value_serializer = "raw"  # type: ignore[attr-defined]
        self.table = PartitionedTable(table)
        self._install_bulk_recovery(app)
        app.task(self._consume)
        app.timer(interval=5.0)(self._refresh_gauges)
        app.timer(interval=60.0)(self._refresh_pareto)
        if s.tick_interval > 0:
            app.timer(interval=s.tick_interval)(self._tick)
        app.timer(interval=self.tuning.resync_check_interval)(self._resync_lost_partitions)
        app.timer(interval=self.tuning.release_interval)(self._release_held)

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
            await self._on_revoked(revoked)

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
            # a partition coming (back) may have moved on elsewhere: its state comes
            # from the changelog, not from what this worker remembered of it
            async with self._lock:
                self.state_cache.drop_partitions({tp.partition for tp in assigned})

        register_web(app, self)
        return app

    def _install_bulk_recovery(self, app: faust.App) -> None:
        """Replace faust's Recovery service (created lazily) with BulkRecovery."""
        tables: Any = app.tables
        if tables._recovery is not None:
            raise RuntimeError("faust's recovery service was created before tierstream's")

        def restored(records: int, seconds: float) -> None:
            self.metrics.restored_records.inc(records)
            self.metrics.restore_seconds.inc(seconds)

        tables._recovery = BulkRecovery(
            app,
            tables,
            beacon=tables.beacon,
            loop=tables.loop,
            table=self.table,
            consumer_config=self.settings.confluent_config(),
            read_committed=self._eos,
            # faust runs the step under broker_request_timeout and stops recovery
            # when that runs out; the rest is left to faust's per-record loop
            budget=(
                0.6 * float(app.conf.broker_request_timeout)
                if self.tuning.restore_budget_s is None
                else min(self.tuning.restore_budget_s, 0.9 * float(app.conf.broker_request_timeout))
            ),
            end_offsets=self._end_offsets,
            on_restored=restored,
        )

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

    def discard_uncommitted_local_state(self) -> None:
        """exactly_once: start from the committed changelog, not the local store.

        The local RocksDB is written before the partition's transaction commits; after a
        crash it can hold state from a transaction that was aborted, and the replayed
        events would then look like duplicates and emit nothing. Recovery reads the
        changelog read_committed, so deleting the local copy at start-up restores
        exactly the committed state (at the cost of a full changelog read).
        """
        tabledir = Path(self.app.conf.tabledir)
        if tabledir.exists():
            shutil.rmtree(tabledir)
            log.info("exactly_once: discarded local table state in %s", tabledir)

    def recovering(self) -> bool:
        """True while faust restores tables from their changelogs."""
        return bool(self.app.tables.recovery.in_recovery)  # type: ignore[attr-defined]

    def assigned_input_partitions(self) -> int:
        inputs = set(self.settings.input_topics)
        return sum(1 for tp in self.app.consumer.assignment() if tp.topic in inputs)

    # -- processing -------------------------------------------------------------------

    async def _consume(self) -> None:
        """Feed the aligner; process whatever it releases; ack only what was processed.

        Takes everything buffered at once (up to ``batch_max``), so batches are small
        when the input is quiet (low latency) and grow under load (fewer, larger
        writes). Messages fetched before a rebalance are skipped: the consumer seeks
        back to the committed offsets and fetches them again for their new owner.
        """
        self._serialize_commits()
        self._drain_first()
        app = self.app
        buffer = self.input_buffer
        batch_max = self.tuning.batch_max
        contract = self._contract
        decode = self.processor.decode
        # faust's Stream inlines Consumer.track_message the same way (without its
        # per-message sensor call): unacked messages hold back graceful shutdown
        track = app.consumer._unacked_messages.add  # type: ignore[attr-defined]
        last_seen = self._last_seen
        linger = self.tuning.batch_within
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
                    items.append((raw.topic, raw.partition, (decode(raw, now_ms), m, intake)))
            except TooMuchBadInput as exc:
                self._fatal(str(exc))
            observe_many(self.metrics.intake_age, ages)
            self.aligner.add(items)
            try:
                await self._release()
            except Exception as exc:
                # Nothing of this batch was acknowledged, so stopping loses nothing;
                # going on would leave a worker that holds partitions but no longer
                # consumes.
                log.exception("batch processing failed")
                self._fatal(f"batch processing failed: {exc!r}")

    def _serialize_commits(self) -> None:
        """Make faust's offset commits wait for a batch in flight to finish.

        faust commits from its own timer task, which can run at any ``await`` of a
        batch's write. Under exactly_once that commits the partition's transaction
        with some of the batch's outputs already in it but without the batch's input
        offsets (they are acked only after the write): a kill right then makes the
        next owner redo those inputs, and read_committed consumers see the outputs
        twice — the kill test caught one duplicate alert that way. Taking the batch
        lock around faust's commit makes each commit see a batch either not started
        or fully written and acked. (Under at_least_once it costs nothing: the commit
        only covers acked offsets anyway.)
        """
        consumer: Any = self.app.consumer
        if getattr(consumer, "_tierstream_serialized", False):
            return
        force_commit = consumer.force_commit
        lock = self._lock

        async def serialized_force_commit(*args: Any, **kwargs: Any) -> bool:
            async with lock:
                return bool(await force_commit(*args, **kwargs))

        consumer.force_commit = serialized_force_commit
        consumer._tierstream_serialized = True

    async def _release_held(self) -> None:
        """Timer: release records whose inputs became caught up or timed out idle."""
        if self.aligner.held:
            try:
                await self._release()
            except Exception as exc:
                log.exception("batch processing failed")
                self._fatal(f"batch processing failed: {exc!r}")

    def _drain_first(self) -> None:
        """Make faust's ``wait_empty`` give up held records instead of waiting for them.

        faust waits (``Consumer.wait_empty``) for every tracked, unacknowledged message
        before it revokes partitions and before it stops. The worker tracks a record
        when it takes it in, and the aligner may hold it for a while; once the fetch is
        stopped, a held record can wait for an input that will not move, and at
        shutdown nothing releases it any more: a SIGTERM under load hung until killed
        (the graceful-rebalance test caught it). So before faust waits, the batch in
        flight finishes (and is acknowledged, so its offsets are committed), then every
        held record is forgotten and untracked, and records of that generation still
        arriving are skipped. None of them was acknowledged: the partitions' next owner
        (this worker again, after a rebalance) reads them from the committed offsets.
        """
        consumer: Any = self.app.consumer
        if getattr(consumer, "_tierstream_drain_first", False):
            return
        wait_empty = consumer.wait_empty

        async def wait_empty_without_held(*args: Any, **kwargs: Any) -> Any:
            async with self._lock:
                self._drained_generation = self.app.consumer_generation_id
                self._forget_held()
            return await wait_empty(*args, **kwargs)

        consumer.wait_empty = wait_empty_without_held
        consumer._tierstream_drain_first = True

    def _forget_held(self) -> None:
        held = self.aligner.drain()
        if held:
            unacked = self.app.consumer._unacked_messages  # type: ignore[attr-defined]
            for _d, message, _t in held:
                unacked.discard(message)
            log.info("giving up partitions: %d held records left to their next owner", len(held))
        self.metrics.held.set(0)

    async def _release(self) -> None:
        async with self._lock:
            if self.app.consumer_generation_id == self._drained_generation:
                self._forget_held()
                return
            self._fresh_ends = await self._probe_inputs(self.aligner.blocking_inputs())
            ready = self.aligner.release(self._caught_up, int(time.time() * 1000))
            if not ready:
                return
            now = time.monotonic()
            observe_many(self.metrics.aligner_hold, [now - t for _d, _m, t in ready])
            # A release of records the aligner held can be several intakes' worth: cut
            # it into batches of at most batch_max, each written and acknowledged before
            # the next, so batch duration (and the commit) stays bounded under backlog.
            consumer = self.app.consumer
            step = self.tuning.batch_max
            for start in range(0, len(ready), step):
                chunk = ready[start : start + step]
                await self.handle_batch([d for d, _m, _t in chunk])
                for _d, message, _t in chunk:
                    message.ack(consumer)

    async def _probe_inputs(
        self, inputs: list[tuple[str, int]]
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
        if not inputs:
            return {}
        names = [(self.settings.topic(t), p) for t, p in inputs]
        try:
            ends = await self._end_offsets.get(names)
        except Exception as exc:  # broker unreachable: wait (bounded) rather than guess
            now = time.monotonic()
            if now - self._probe_warned_at > 10:
                self._probe_warned_at = now
                log.warning("end offsets unavailable (%s); holding blocked inputs", exc)
            return None
        positions = self._fetch_positions(names)
        return {tp: (end, positions.get(tp)) for tp, end in ends.items()}

    def _fetch_positions(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The consumer's next fetch offset of each partition, where it has a valid one.

        Read from aiokafka's subscription state without going through the consumer
        thread (a call there waits behind the fetch in progress); reading an int that
        another thread writes is safe under the GIL, and a value a moment old only
        makes the caught-up test more cautious.
        """
        out: dict[tuple[str, int], int] = {}
        try:
            consumer = self.app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
            assignment = consumer._subscription.subscription.assignment
        except Exception:  # not started, or rebalancing: positions unknown
            return out
        for topic, partition in tps:
            try:
                state = assignment.state_value(TP(topic, partition))
            except Exception:
                continue
            if state is not None and state.has_valid_position:
                out[(topic, partition)] = int(state.position)
        return out

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
            pos = self.app.consumer._read_offset.get(TP(full, partition))  # type: ignore[attr-defined]
            if (pos or 0) >= high:
                return True
        if position is not None and position < high:
            return False
        return None

    async def _on_revoked(self, revoked: set[TP]) -> None:
        """Drop held records of partitions this worker no longer owns.

        They were never acknowledged; their next owner consumes them from the last
        committed offset.
        """
        async with self._lock:
            tps = [
                (self._contract[tp.topic], tp.partition)
                for tp in revoked
                if tp.topic in self._contract
            ]
            dropped = self.aligner.drop_partitions(tps)
            for _topic, partition in tps:
                self.processor.due.drop(partition)
            self.state_cache.drop_partitions({p for _t, p in tps})
            for tp in revoked:
                self._last_seen.pop((tp.topic, tp.partition), None)
        if dropped:
            log.info("rebalance: released %d held records of revoked partitions", dropped)

    async def handle_batch(self, items: list[Decoded]) -> None:
        started = time.perf_counter()
        result = self.processor.apply_ordered(items, self.table.get, self.table.items)

        if self._eos:
            await self._write_transactional(result)
        else:
            await self._write_at_least_once(result)
        emitted_at = time.time()
        for ts in result.decision_event_ts:
            self.metrics.event_latency.observe(max(0.0, emitted_at - ts / 1000))

        self.metrics.observe_batch(result)
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

    async def _tick(self) -> None:
        """The clock: one tick per owned partition, carrying the wall time.

        Time enters the core only as data: the tick goes through the ticks topic like
        any event (and is aligned with the inputs by event time), so a replay of the
        inputs with the ticks fires the same timers.
        """
        if self.recovering():
            return
        now_ms = int(time.time() * 1000)
        topic = self.settings.topic(TOPIC_TICKS)
        first_input = self.settings.input_topics[0]
        owned = sorted(
            tp.partition for tp in self.app.consumer.assignment() if tp.topic == first_input
        )
        for p in owned:
            value = orjson.dumps(
                {"event_id": f"tick-{p}-{now_ms}", "partition": p, "ts": format_ts(now_ms)}
            )
            await self.app.producer.send(topic, None, value, p, None, None)

    async def _refresh_pareto(self) -> None:
        """The top-20% AUM share (Pareto) gauge, from the Redis profiles."""
        try:
            share = await aum_top_share(self.redis, self.settings.redis_key_prefix)
        except Exception as exc:  # Redis down: the sink's metrics already show it
            log.debug("pareto refresh failed: %s", exc)
            return
        self.metrics.aum_top20_share.set(share)

    async def _resync_lost_partitions(self) -> None:
        """Rewrite every profile of a partition whose Redis 'synced' marker is gone.

        Redis is a view of the table; when it restarts empty (or is flushed) the owners
        of each partition rebuild it from their local state. Writes are versioned, so
        racing with live processing can never move a profile backwards.
        """
        if self.recovering():
            return
        contract = self._contract
        mine = sorted(
            {tp.partition for tp in self.app.consumer.assignment() if tp.topic in contract}
        )
        try:
            lost = await self.sink.unsynced(mine)
        except Exception as exc:  # Redis down: the write path retries and reports it
            log.debug("resync check failed: %s", exc)
            return
        for partition in lost:
            n = await self._resync_partition(partition)
            await self.sink.mark_synced(partition)
            self.metrics.redis_resyncs.inc()
            log.info("redis resync: partition %d, %d profiles rewritten", partition, n)

    async def _resync_partition(self, partition: int, chunk: int = 1000) -> int:
        rules = self.rules
        batch: dict[bytes, dict[str, str]] = {}
        n = 0
        for key, value in self.table.items(partition):
            batch[key] = profile_fields(CustomerState.from_bytes(value), rules)
            if len(batch) >= chunk:
                n += len(batch)
                await self.sink.write(batch)
                batch = {}
        if batch:
            n += len(batch)
            await self.sink.write(batch)
        return n

    async def _write_at_least_once(self, result: BatchResult) -> None:
        # 1. outputs acknowledged by the broker, and profiles in Redis (which blocks with
        #    backoff while Redis is down), both before the state moves; the two are
        #    independent (profiles are versioned), so they overlap
        started = time.perf_counter()
        names = self._output_names
        await asyncio.gather(
            self._acked.send_all([(names[o.topic], o.key, o.value, None) for o in result.outputs]),
            self.sink.write(result.profiles),
        )
        # 2. state: the changelog acknowledged by the broker before the local store and
        #    before any input is acked, so no offset commit can overtake it
        outputs_done = time.perf_counter()
        stage = self.metrics.write_duration
        stage.labels("outputs").observe(outputs_done - started)
        states = result.states
        changelog = self._changelog_name
        delivered = await self._acked.send_all(
            [(changelog, key, value, partition) for partition, key, value in states]
        )
        # per partition: the states and the newest changelog offset, in one store write
        newest: dict[int, int] = {}
        for (partition, _k, _v), (_p, offset) in zip(states, delivered, strict=True):
            if offset > newest.get(partition, -1):
                newest[partition] = offset
        for partition, items in _by_partition(states).items():
            self.table.put_many(partition, items, newest[partition])
        stage.labels("state").observe(time.perf_counter() - outputs_done)

    async def _write_transactional(self, result: BatchResult) -> None:
        """exactly_once: outputs and changelog go into the source partition's transaction.

        faust-streaming commits offsets inside per-partition transactions
        (``<app_id>-<group>-<partition>``) but its topic and table sends carry no
        transactional id, so they land outside them (faust #177). tierstream sends
        every output and changelog record itself with the transactional id of the
        input partition that caused it, so offsets, outputs and state commit or abort
        together. Redis is outside any Kafka transaction; its versioned writes make a
        re-run after an abort rewrite the same versions.
        """
        started = time.perf_counter()
        prefix = self._transactional_prefix()
        send = self.app.producer.send
        full = self._output_names
        futures = [
            await send(
                full[o.topic],
                o.key,
                o.value,
                None,
                None,
                None,
                transactional_id=f"{prefix}{o.source_partition}",
            )
            for o in result.outputs
        ]
        await self.sink.write(result.profiles)
        # the local store runs ahead of the transaction: a restart under exactly_once
        # discards it (discard_uncommitted_local_state), so no offset is kept with it
        for partition, items in _by_partition(result.states).items():
            self.table.put_many(partition, items, None)
        changelog = self._changelog_name
        futures += [
            await send(
                changelog,
                key,
                value,
                partition,
                None,
                None,
                transactional_id=f"{prefix}{partition}",
            )
            for partition, key, value in result.states
        ]
        for fut in futures:
            await fut
        self.metrics.write_duration.labels("transaction").observe(time.perf_counter() - started)

    def _transactional_prefix(self) -> str:
        group = self.app.assignor.group_for_topic(self.settings.input_topics[0])
        return f"{self.app.conf.id}-{group}-"

    def _fatal(self, message: str) -> None:
        """Stop the process now, before faust can commit the failing batch's offsets."""
        log.critical("tierstream stopping: %s", message)
        print(f"tierstream: fatal: {message}", file=sys.stderr, flush=True)
        logging.shutdown()
        os._exit(EXIT_FATAL)

    async def _refresh_gauges(self) -> None:
        try:
            for tier, n in (await self.sink.tier_counts()).items():
                self.metrics.customers.labels(tier).set(n)
        except Exception as exc:  # Redis down: the sink's metrics already show it
            log.debug("tier count refresh failed: %s", exc)
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic not in self._contract:
                continue
            high = consumer.highwater(tp)
            pos = self.app.consumer._read_offset.get(tp)  # type: ignore[attr-defined]
            if high is None:
                continue
            lag = high - ((pos + 1) if pos is not None else 0)
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(lag, 0))


def _by_partition(states: list[tuple[int, bytes, bytes]]) -> dict[int, list[tuple[bytes, bytes]]]:
    """A batch's (partition, key, state) rows grouped per partition, in order."""
    out: dict[int, list[tuple[bytes, bytes]]] = {}
    for partition, key, value in states:
        out.setdefault(partition, []).append((key, value))
    return out


def run_worker(service: TierstreamService, loglevel: str = "info") -> None:
    """Run the faust worker in this process until it is stopped (SIGINT/SIGTERM).

    Garbage collection is tuned first (streams/gc_tuning.py): a batch allocates tens
    of thousands of short-lived objects, and the default thresholds cost 10-20% of the
    CPU per event.
    """
    tune_gc()
    faust_worker(service, loglevel).execute_from_commandline()


def faust_worker(service: TierstreamService, loglevel: str = "info") -> faust.Worker:
    """faust's Worker for the service, without its terminal spinner.

    At a log level of WARNING or above, faust's Worker installs a progress spinner on
    the root logger and sets the *root logger's* level to DEBUG so the spinner sees
    every record: from then on every ``logger.debug`` call in aiokafka, faust and mode
    builds a LogRecord that the handlers then drop. aiokafka logs per fetch request,
    so under load that was about a quarter of the consumer thread's time holding the
    GIL (py-spy, 2026-12-03). A service has no terminal to spin on anyway.
    """
    worker = faust.Worker(service.app, loglevel=loglevel, quiet=True)
    worker.spinner = None
    return worker


def profile_json(profile: dict[str, str]) -> bytes:
    return orjson.dumps(profile, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
