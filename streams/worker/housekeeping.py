"""The worker's timers: the clock's ticks, the gauges, and rebuilding a Redis that lost data.

None of these decide anything. The tick is how time enters the core (as data, through
the ticks topic); the gauges read Redis and faust's consumer for Prometheus; the resync
rewrites a partition's profiles when Redis lost them. Each skips its turn while faust
restores tables (a half-restored table would tick, count or resync wrong) and
tolerates Redis being down (the write path already retries and reports it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import faust
import orjson

from schemas.events import TOPIC_TICKS
from schemas.timefmt import format_ts_utc
from state.customer import CustomerState
from state.decisions import TIERS
from state.profile import profile_fields
from state.rules import Rules
from streams.concentration import value_concentration
from streams.metrics import Metrics
from streams.redis_sink import RedisProfileSink
from streams.settings import Settings
from streams.worker.faust_glue.app import in_recovery
from streams.worker.faust_glue.consumer import read_offset
from streams.worker.faust_glue.table import PartitionedTable

log = logging.getLogger("tierstream")


class Housekeeping:
    """The timer callbacks of one worker (the service registers them with faust)."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        rules: Rules,
        *,
        redis: Any,
        sink: RedisProfileSink,
        table: PartitionedTable,
        metrics: Metrics,
        contract: dict[str, str],
        rules_at: Callable[[int], Rules] | None = None,
        backlog: Callable[[], set[int]] | None = None,
        batch_lock: asyncio.Lock | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.rules = rules
        #: the rules in force at an event time (the worker's timeline of versions)
        self.rules_at: Callable[[int], Rules] = rules_at or (lambda _ts: rules)
        #: partitions to tick again soon (the batch loop's due backlog)
        self.backlog: Callable[[], set[int]] = backlog or set
        self.redis = redis
        self.sink = sink
        self.table = table
        self.metrics = metrics
        #: full topic name -> contract name, for every consumed topic
        self.contract = contract
        #: The batch loop's lock: a resync never interleaves with a batch's writes.
        self.batch_lock = batch_lock or asyncio.Lock()

    async def tick(self) -> None:
        """The clock: one tick per owned partition, carrying the wall time.

        Time enters the core only as data: the tick goes through the ticks topic like
        any event (and is aligned with the inputs by event time), so a replay of the
        inputs with the ticks fires the same timers.
        """
        await self._tick(None)

    async def tick_backlog(self) -> None:
        """The clock, sooner for the partitions whose last tick left customers due
        (a tick fires at most ``--tick-budget`` of them: a rules version taking effect
        wakes everyone, and this spreads them over ticks a second apart)."""
        backlog = self.backlog()
        if backlog:
            await self._tick(backlog)

    async def _tick(self, only: set[int] | None) -> None:
        if in_recovery(self.app):
            return
        now_ms = int(time.time() * 1000)
        topic = self.settings.topic(TOPIC_TICKS)
        first_input = self.settings.input_topics[0]
        owned = sorted(
            tp.partition
            for tp in self.app.consumer.assignment()
            if tp.topic == first_input and (only is None or tp.partition in only)
        )
        if only is not None:
            only.clear()
        for p in owned:
            value = orjson.dumps(
                {"event_id": f"tick-{p}-{now_ms}", "partition": p, "ts": format_ts_utc(now_ms)}
            )
            await self.app.producer.send(topic, None, value, p, None, None)

    async def refresh_pareto(self) -> None:
        """The Pareto gauges -- top-20% shares of AUM and of contribution -- and the
        contribution per tier, from one scan of the Redis profiles."""
        try:
            found = await value_concentration(self.redis, self.settings.redis_key_prefix)
        except Exception as exc:  # Redis down: the sink's metrics already show it
            log.debug("pareto refresh failed: %s", exc)
            return
        self.metrics.aum_top20_share.set(found.aum_top20_share)
        self.metrics.contribution_top20_share.set(found.contribution_top20_share)
        for tier in TIERS:  # a tier that emptied shows 0, not its last sum
            total = found.contribution_by_tier.get(tier, 0)
            self.metrics.contribution.labels(tier).set(float(total))

    async def refresh_gauges(self) -> None:
        """Customers per tier (from the Redis tier counts) and consumer lag."""
        try:
            for tier, n in (await self.sink.tier_counts()).items():
                self.metrics.customers.labels(tier).set(n)
        except Exception as exc:  # Redis down: the sink's metrics already show it
            log.debug("tier count refresh failed: %s", exc)
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic not in self.contract:
                continue
            high = consumer.highwater(tp)
            pos = read_offset(consumer, tp.topic, tp.partition)
            if high is None:
                continue
            lag = high - ((pos + 1) if pos is not None else 0)
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(lag, 0))

    async def resync_lost_partitions(self) -> None:
        """Rewrite every profile of a partition whose Redis 'synced' marker is gone.

        Redis is a view of the table; when it restarts empty (or is flushed) the owners
        of each partition rebuild it from their local state. Writes are versioned, so
        racing with live processing can never move a profile backwards.
        """
        if in_recovery(self.app):
            return
        contract = self.contract
        mine = sorted(
            {tp.partition for tp in self.app.consumer.assignment() if tp.topic in contract}
        )
        try:
            lost = await self.sink.unsynced(mine)
        except Exception as exc:  # Redis down: the write path retries and reports it
            log.debug("resync check failed: %s", exc)
            return
        for partition in lost:
            # under the batch lock: a resync that read the table before an erasure's
            # tombstone must not write the erased profile back after its Redis delete
            async with self.batch_lock:
                n = await self._resync_partition(partition)
                await self.sink.mark_synced(partition)
            self.metrics.redis_resyncs.inc()
            log.info("redis resync: partition %d, %d profiles rewritten", partition, n)

    async def _resync_partition(self, partition: int, chunk: int = 1000) -> int:
        rules_at = self.rules_at
        batch: dict[bytes, dict[str, str]] = {}
        n = 0
        for key, value in self.table.items(partition):
            st = CustomerState.from_bytes(value)
            batch[key] = profile_fields(st, rules_at(st.updated_at))
            if len(batch) >= chunk:
                n += len(batch)
                await self.sink.write(batch)
                batch = {}
        if batch:
            n += len(batch)
            await self.sink.write(batch)
        return n
