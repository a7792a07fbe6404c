"""The worker's composition root: one faust app with everything wired to it.

faust runs the consumer group (rebalancing, fetching, offset commits), the table and
its changelog, and the web server. This module builds them and the pieces around
them, and registers what faust runs:

* the batch loop (loop.py): consumed input -> aligner -> pipeline -> commit -> ack;
* the commit (commit.py): THE write order, one class per processing guarantee;
* the timers (housekeeping.py): the clock's ticks, gauges, Redis resync;
* the HTTP API (streams/http/), given the settings, Redis, the metrics and this
  service as its ``WorkerStatus``;
* faust's internals it needs (faust_glue/): the App, the raw table, bulk recovery.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from schemas.decoder import Decoder
from schemas.events import INPUT_TOPICS, OUTPUT_TOPICS, TICK_TOPICS, TOPIC_AUDIT
from schemas.redaction import DEFAULT_FIELDS, Redactor
from state.rules import Rules, load_rules
from streams.http.views import register_web
from streams.metrics import Metrics
from streams.pipeline.bad_input import BadInputGuard
from streams.pipeline.input_order import EventTimeRegressions
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.rules_sweeps import version_at
from streams.pipeline.state_cache import DEFAULT_CAPACITY, StateCache
from streams.redis_sink import RedisProfileSink, connect
from streams.rules_topic import RulesReader
from streams.settings import Settings
from streams.topics import STATE_TABLE, changelog_topic
from streams.worker.acked_producer import AckedProducer
from streams.worker.commit import AtLeastOnceCommit, BatchCommit, ExactlyOnceCommit
from streams.worker.end_offsets import EndOffsets
from streams.worker.faust_glue.app import (
    build_app,
    direct_input,
    in_recovery,
    raw_table,
    register_topic,
    replace_recovery,
    worker_without_spinner,
)
from streams.worker.faust_glue.intake import BufferedInputTopic, DirectInput, InputBuffer
from streams.worker.faust_glue.recovery import BulkRecovery
from streams.worker.faust_glue.table import PartitionedTable
from streams.worker.gc_tuning import tune_gc
from streams.worker.housekeeping import Housekeeping
from streams.worker.loop import BatchLoop
from streams.worker.rules_gate import RulesGate

log = logging.getLogger("tierstream")


@dataclass
class WorkerTuning:
    """Batching knobs."""

    batch_max: int = 1000
    #: Extra wait for a batch to fill (seconds). 0: a batch is whatever input is
    #: waiting when the previous batch is done — small when quiet, large under load.
    batch_within: float = 0.0
    #: How far ahead of the worker's clock an event time may be; None: the rules'
    #: ``limits.max_future_skew_ms`` (``--max-future-skew-ms`` overrides it).
    max_future_skew_ms: int | None = None
    bad_window: int = 1000
    bad_max_share: float = 0.5
    #: Longest wait for an input partition whose end offset is unknown (broker did not
    #: answer) or that was fetched but not fully received yet.
    max_idle_ms: int = 2000
    #: Longest wait for an input partition known to hold records not yet fetched.
    #: The default keeps a stuck fetch from stalling a live partition long; the
    #: reliability tests run with it (every release that gives up is logged).
    max_lag_wait_ms: int = 2000
    #: Longest bulk changelog read per rebalance (faust_glue/recovery.py); None: 60% of
    #: faust's broker_request_timeout (faust stops recovery when that runs out);
    #: 0: no bulk read, faust's own per-record recovery only.
    restore_budget_s: float | None = None
    #: How often held records are re-checked when no new input arrives.
    release_interval: float = 0.1
    #: How often to check whether Redis lost this worker's profiles (restart, flush).
    resync_check_interval: float = 5.0
    #: How often the Pareto gauges (AUM and contribution shares) scan the profiles.
    pareto_interval: float = 60.0
    #: Customer states kept between batches (streams/pipeline/state_cache.py), about
    #: their serialized size each; 0 turns the cache off (every state read from the store).
    state_cache: int = DEFAULT_CAPACITY
    #: Customers one tick fires at most per partition; the rest wait for the next tick,
    #: which comes ``backlog_tick_interval`` later (a rules version waking everyone).
    tick_budget: int = 2000
    backlog_tick_interval: float = 1.0
    #: Longest wait for a rules check before held events are decided by the versions
    #: known (rules_gate.py); more than the decoder's future-skew limit by default, so
    #: every event it accepts waits until the wall clock passes it.
    max_rules_wait_ms: int = 360_000


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
            self.decoder(),
            BadInputGuard(self.tuning.bad_window, self.tuning.bad_max_share),
            cache=self.state_cache if self.tuning.state_cache else None,
            tick_budget=self.tuning.tick_budget or None,
            redactor=dead_letter_redactor(settings),
        )
        # the rules topic: versions taken up at their effective_from (rules_gate.py)
        self.rules_gate = RulesGate(
            RulesReader(settings),
            self.rules,
            self.metrics,
            self.processor.set_timeline,
            max_wait_ms=self.tuning.max_rules_wait_ms,
        )
        # the credential rule (no Redis user without a password) holds from start-up on
        creds = settings.redis_credentials()
        self.redis = connect(settings.redis_url, creds.password, creds.username)
        self.sink = RedisProfileSink(self.redis, settings.redis_key_prefix, self.metrics)
        self._eos = settings.processing_guarantee == "exactly_once"
        self._end_offsets = EndOffsets(settings.confluent_config(), read_committed=self._eos)
        self.app = self._build_app()

    def decoder(self) -> Decoder:
        """The decoder, held to the rules' ``[limits]``; ``--max-future-skew-ms``, when
        given, replaces the rules' ``limits.max_future_skew_ms``."""
        limits = self.rules.limits.decoder()
        if self.tuning.max_future_skew_ms is not None:
            limits["max_future_skew_ms"] = self.tuning.max_future_skew_ms
        return Decoder(**limits)

    @property
    def batches_done(self) -> int:
        return self.loop.batches_done

    # -- construction ---------------------------------------------------------------

    def _build_app(self) -> faust.App:
        s, tuning = self.settings, self.tuning
        app = build_app(s, stream_buffer_maxsize=tuning.batch_max * 4)
        contract = {s.topic(t): t for t in (*INPUT_TOPICS, *TICK_TOPICS)}
        self.input_topic = BufferedInputTopic(
            app,
            topics=list(s.consumed_topics),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.input_topic.buffer = buffer = InputBuffer(tuning.batch_max * 4)
        register_topic(app, self.input_topic)
        direct_input(app, DirectInput(frozenset(s.consumed_topics), buffer))
        self.table = PartitionedTable(raw_table(app, STATE_TABLE, s.partitions))
        replace_recovery(app, lambda tables: self._bulk_recovery(app, tables))
        self.loop = BatchLoop(
            app,
            s,
            buffer=buffer,
            processor=self.processor,
            state_cache=self.state_cache,
            table=self.table,
            commit=self._commit(app),
            end_offsets=self._end_offsets,
            metrics=self.metrics,
            contract=contract,
            batch_max=tuning.batch_max,
            batch_within=tuning.batch_within,
            max_idle_ms=tuning.max_idle_ms,
            max_lag_wait_ms=tuning.max_lag_wait_ms,
            rules_gate=self.rules_gate,
            time_regressions=EventTimeRegressions(s.time_regression_tolerance_ms),
        )
        self.housekeeping = chores = Housekeeping(
            app,
            s,
            self.rules,
            redis=self.redis,
            sink=self.sink,
            table=self.table,
            metrics=self.metrics,
            contract=contract,
            rules_at=lambda ts: version_at(self.processor.rules, ts),
            backlog=lambda: self.loop.due_backlog,
            batch_lock=self.loop.lock,
        )
        app.task(self.loop.run)
        app.timer(interval=5.0)(chores.refresh_gauges)
        app.timer(interval=tuning.pareto_interval)(chores.refresh_pareto)
        if s.tick_interval > 0:
            app.timer(interval=s.tick_interval)(chores.tick)
            app.timer(interval=tuning.backlog_tick_interval)(chores.tick_backlog)
        app.timer(interval=tuning.resync_check_interval)(chores.resync_lost_partitions)
        app.timer(interval=tuning.release_interval)(self.loop.release_held)

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
            await self.loop.on_revoked(revoked)

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
            await self.loop.on_assigned(assigned)

        register_web(app, s, self.redis, self.metrics, self)
        return app

    def _commit(self, app: faust.App) -> BatchCommit:
        """The write order of the configured processing guarantee (commit.py)."""
        s = self.settings
        # the decisions, dead letters, and audit records: erasures' and the core's
        # tier-override audits (issue 22)
        outputs = {t: s.topic(t) for t in (*OUTPUT_TOPICS, TOPIC_AUDIT)}
        changelog = changelog_topic(s)
        if self._eos:
            return ExactlyOnceCommit(
                lambda: app.producer,
                self._transactional_prefix,
                self.sink,
                self.table,
                outputs,
                changelog,
                self.metrics,
            )
        return AtLeastOnceCommit(
            # librdkafka, acks awaited off the event loop (acked_producer.py)
            AckedProducer(s.producer_config(**{"linger.ms": 1})),
            self.sink,
            self.table,
            outputs,
            changelog,
            self.metrics,
        )

    def _bulk_recovery(self, app: faust.App, tables: Any) -> BulkRecovery:
        """faust's Recovery with a bulk changelog read first (faust_glue/recovery.py)."""

        def restored(records: int, seconds: float) -> None:
            self.metrics.restored_records.inc(records)
            self.metrics.restore_seconds.inc(seconds)

        return BulkRecovery(
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

    def _transactional_prefix(self) -> str:
        group = self.app.assignor.group_for_topic(self.settings.input_topics[0])
        return f"{self.app.conf.id}-{group}-"

    # -- what the HTTP API and the command line ask -----------------------------------

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
        return in_recovery(self.app)

    def assigned_input_partitions(self) -> int:
        inputs = set(self.settings.input_topics)
        return sum(1 for tp in self.app.consumer.assignment() if tp.topic in inputs)


def dead_letter_redactor(settings: Settings) -> Redactor:
    """Personal fields out of dead letters (schemas/redaction.py), as configured."""
    fields = DEFAULT_FIELDS if settings.dead_letter_redact is None else settings.dead_letter_redact
    key = settings.dead_letter_redact_key
    if fields and key is None:
        log.warning(
            "dead letters: personal fields are replaced by a plain SHA-256; set "
            "TIERSTREAM_DEAD_LETTER_REDACT_KEY so a guess cannot be confirmed"
        )
    return Redactor(fields, key.encode("utf-8") if key else None)


def run_worker(service: TierstreamService, loglevel: str = "info") -> None:
    """Run the faust worker in this process until it is stopped (SIGINT/SIGTERM).

    Garbage collection is tuned first (gc_tuning.py): a batch allocates tens of
    thousands of short-lived objects, and the default thresholds cost 10-20% of the
    CPU per event.
    """
    tune_gc()
    faust_worker(service, loglevel).execute_from_commandline()


def faust_worker(service: TierstreamService, loglevel: str = "info") -> faust.Worker:
    """faust's Worker for the service, without its terminal spinner (faust_glue/app.py
    ``worker_without_spinner`` says why)."""
    return worker_without_spinner(service.app, loglevel)
