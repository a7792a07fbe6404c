"""The worker's rules watermark: which versions it knows, and until when it may decide.

Why a gate and not "switch when the record arrives": a version decides every event
stamped at or after its ``effective_from``, on every worker, whenever the record
reaches it. A worker that decided such an event by the older version only because it
had not read the record yet would make a decision no replay reproduces. So the worker
decides an event only once it knows every version that could take effect by the
event's time:

* the worker reads the whole ``rules`` topic (every partition, no consumer group) from
  the beginning before it decides anything, then follows it;
* before a release (streams/worker/loop.py), it asks the broker for the topic's end
  offsets at its wall time W (in the same request as the aligner's input probe) and
  reads up to them. Every record it has not read was appended after that request,
  and is accepted only if it takes effect at least the clock margin after its append
  time (streams/rules_log.py): at or after W, as long as the worker's clock is within
  the margin of the broker's. Events stamped before W are released, the rest wait
  for the next check (the aligner keeps them in event-time order);
* the check repeats with every release, so W follows the wall clock: live events
  wait for nothing, events stamped ahead of the clock wait until it passes them
  (bounded by the decoder's future-skew limit), and events wait longer only while the
  broker cannot answer -- at most ``max_wait_ms``, after which they are decided by
  the versions known, counted and logged as a determinism risk.

When the accepted history changes, the new timeline goes to the pipeline, which wakes
every customer at each new switch (streams/pipeline/processor.py). A record the
worker cannot load is refused like everywhere else: the version before it stays in
force, with ``tierstream_rules_refused_total`` and an error line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from schemas.timefmt import format_ts_utc
from state.rules import Rules
from state.timeline import RulesTimeline
from streams.metrics import Metrics
from streams.rules_log import Entry, RulesHistory, accept
from streams.rules_topic import RulesReader

log = logging.getLogger("tierstream")

#: Before the first check: nothing may be decided yet.
NOTHING = -(2**63)


class RulesMetrics:
    """The gate's Prometheus metrics, in the worker's registry."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.version = Gauge(
            "tierstream_rules_version_info",
            "1 for the rules version in force at the worker's wall clock (by the rules "
            "topic as this worker read it).",
            ["version"],
            registry=r,
        )
        self.accepted = Gauge(
            "tierstream_rules_versions",
            "Versions on the rules topic this worker takes up (accepted publications).",
            registry=r,
        )
        self.refused = Counter(
            "tierstream_rules_refused_total",
            "Rules records refused, by reason: backdated, duplicate (a version published "
            "before), load_error (the TOML does not load here: the version before it "
            "stays in force), invalid (not a rules record).",
            ["reason"],
            registry=r,
        )
        self.watermark_age = Gauge(
            "tierstream_rules_watermark_age_seconds",
            "Wall time since the rules topic was last known to be read to its end: events "
            "stamped after that wait. Grows while the broker cannot answer.",
            registry=r,
        )
        self.held = Gauge(
            "tierstream_rules_held_events",
            "Records held because they are stamped at or after the rules watermark "
            "(their task's earliest record is): ahead of the wall clock, or no fresh "
            "rules check.",
            registry=r,
        )
        self.timeouts = Counter(
            "tierstream_rules_hold_timeouts_total",
            "Releases that stopped waiting for a rules check after max_wait_ms: their "
            "events were decided by the versions known (a determinism risk if a version "
            "takes effect before their time).",
            registry=r,
        )


def _reason_class(entry: Entry) -> str:
    r = entry.reason
    if entry.record is None:
        return "invalid"
    if r.startswith("backdated"):
        return "backdated"
    if r.startswith("version"):
        return "duplicate"
    return "load_error"


class RulesGate:
    """The rules history this worker knows and the event time it may decide up to."""

    def __init__(
        self,
        reader: RulesReader,
        base: Rules,
        metrics: Metrics,
        on_timeline: Callable[[RulesTimeline], Any],
        *,
        max_wait_ms: int = 360_000,
        read_timeout: float = 2.0,
    ) -> None:
        self.reader = reader
        self.base = base
        self.metrics = RulesMetrics(metrics)
        self.on_timeline = on_timeline
        self.max_wait_ms = max_wait_ms
        self.read_timeout = read_timeout
        #: events stamped before this (epoch ms) may be decided
        self.watermark = NOTHING
        #: wall time (ms) of the last check that found the topic read to its end
        self.checked_at: int | None = None
        self.history: RulesHistory = accept([], base)
        self._loaded: dict[tuple[int, int], Rules | str] = {}
        self._seen = 0
        self._holding_since: int | None = None
        self._warned_at = 0.0
        self._shown_version: str | None = None

    async def topic_partitions(self) -> list[tuple[str, int]]:
        """(full topic, partition) of the rules topic, for the end-offset probe."""
        if not self.reader.partitions:
            await asyncio.to_thread(self.reader.end_offsets)  # opens it, learns them
        return [(self.reader.topic, p) for p in self.reader.partitions]

    async def check(self, ends: dict[int, int], asked_at_ms: int) -> bool:
        """The broker said ``ends`` when asked at ``asked_at_ms`` (the worker's wall
        clock, read before the request): read up to them, take up what is new, and
        move the watermark to ``asked_at_ms``. False if the reading did not finish."""
        reader = self.reader
        if not reader.caught_up(ends):
            done = await asyncio.to_thread(reader.read_until, ends, self.read_timeout)
            if not done:
                return False
        if len(reader.messages) != self._seen:
            self._take_up()
        if asked_at_ms > self.watermark:
            self.watermark = asked_at_ms
        self.checked_at = asked_at_ms
        return True

    def _take_up(self) -> None:
        old = self.history
        new = accept(self.reader.messages, self.base, self._loaded)
        self._seen = len(self.reader.messages)
        known = {(e.partition, e.offset): e.status for e in old.entries}
        for e in new.entries:
            if known.get((e.partition, e.offset)) == e.status:
                continue
            if e.status == "refused":
                self.metrics.refused.labels(_reason_class(e)).inc()
                log.error(
                    "rules: record %d:%d (version %s) refused, the versions before it stay "
                    "in force: %s",
                    e.partition,
                    e.offset,
                    e.version or "?",
                    e.reason,
                )
            else:
                assert e.record is not None
                log.info(
                    "rules: version %s %s from %s (label %r, published by %s at %s, offset %d)",
                    e.version,
                    "takes effect" if e.status == "accepted" else f"superseded ({e.reason})",
                    format_ts_utc(e.record.effective_from),
                    e.record.label,
                    e.record.published_by,
                    format_ts_utc(e.record.published_at),
                    e.offset,
                )
        self.history = new
        self.metrics.accepted.set(len(new.accepted))
        if [(v.effective_from, v.rules.version) for v in new.timeline.versions] != [
            (v.effective_from, v.rules.version) for v in old.timeline.versions
        ]:
            self.on_timeline(new.timeline)

    def cutoff(self, now_ms: int, holding: bool) -> int | None:
        """The release's ``before`` (None: no cutoff). ``holding``: whether a task's
        earliest record is at or after the watermark."""
        m = self.metrics
        if self.checked_at is not None:
            m.watermark_age.set(max(0, now_ms - self.checked_at) / 1000)
        version = self.history.timeline.at(now_ms).version
        if version != self._shown_version:
            if self._shown_version is not None:
                m.version.remove(self._shown_version)
            m.version.labels(version).set(1)
            self._shown_version = version
        if not holding:
            self._holding_since = None
            return self.watermark
        if self._holding_since is None:
            self._holding_since = now_ms
        held_for = now_ms - self._holding_since
        if held_for > self.max_wait_ms:
            m.timeouts.inc()
            log.error(
                "rules: no rules check for %d s; deciding the held events by the versions "
                "known (a version taking effect before their time would not be applied to "
                "them) -- see tierstream_rules_hold_timeouts_total",
                held_for // 1000,
            )
            self._holding_since = None
            return None
        now = time.monotonic()
        if held_for > 10_000 and now - self._warned_at > 10:
            self._warned_at = now
            log.warning(
                "rules: events held for %d s: stamped at or after the rules watermark %s "
                "(ahead of this worker's clock, or the rules topic could not be checked)",
                held_for // 1000,
                format_ts_utc(self.watermark) if self.watermark > NOTHING else "(none yet)",
            )
        return self.watermark
