"""Prometheus metrics, named by Prometheus conventions (``tierstream_`` prefix,
``_total`` counters, base units). Labels are bounded: topics, tiers, kinds, reason
classes and partitions — never customer ids or personal data.

Each worker owns a ``Metrics`` with its own registry, so tests (and several apps in
one process) never share counters. Shared by the worker, the HTTP API and the Redis
sink, so it imports no streams sub-package: a batch is observed through the
``BatchTally`` protocol, which the pipeline's ``BatchResult`` satisfies.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from state.decisions import Alert, Decision, Offer, TierChange

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
#: Stages of one record's trip through the worker: finer at the low end, where the
#: latency budget (~100 ms end to end) is spent.
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 30)


class BatchTally(Protocol):
    """What a processed batch reports (streams/pipeline/processor.py ``BatchResult``)."""

    @property
    def counts(self) -> Mapping[tuple[str, str], int]:
        """(topic, result) -> events; result is applied | duplicate | late | dead_letter."""
        ...

    @property
    def dead_letters(self) -> Mapping[tuple[str, str], int]:
        """(topic, reason class) -> dead letters."""
        ...

    @property
    def decisions(self) -> Sequence[Decision]: ...

    @property
    def offer_responses(self) -> Mapping[tuple[str, str, str], int]:
        """(offer kind, the offer's tier, outcome) -> attributed offer responses."""
        ...

    @property
    def erasures(self) -> Mapping[str, int]:
        """Erasure requests by result: erased | not_found."""
        ...


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.events = Counter(
            "tierstream_events_consumed_total",
            "Input events consumed, by topic and result (applied, duplicate, late, dead_letter).",
            ["topic", "result"],
            registry=r,
        )
        self.event_latency = Histogram(
            "tierstream_event_to_output_latency_seconds",
            "Event time to the moment its decisions were produced. Includes producer "
            "delay upstream; replays of old data land in the top bucket.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            "tierstream_batch_duration_seconds",
            "Wall time to process one batch: decode, core, produce, Redis, changelog.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.intake_age = Histogram(
            "tierstream_input_age_at_intake_seconds",
            "Age of an input record when the worker takes it in: intake wall clock minus "
            "the record's Kafka timestamp. Covers the upstream producer's batching, the "
            "broker and the fetch; a backlog shows here first.",
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.aligner_hold = Histogram(
            "tierstream_aligner_hold_seconds",
            "Time an input record waits between intake and processing: event-time "
            "alignment across the input topics, plus any batch still being written.",
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.write_duration = Histogram(
            "tierstream_batch_write_seconds",
            "Wall time of a batch's writes by stage: 'outputs' (outputs acknowledged by "
            "the broker and profiles in Redis) and 'state' (changelog acknowledged and "
            "local store written); exactly_once has one 'transaction' stage.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "tierstream_batch_size_events",
            "Events per processed batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.tier_changes = Counter(
            "tierstream_tier_changes_total",
            "Tier changes emitted, by from/to tier (from_tier 'none' for a first tier).",
            ["from_tier", "to_tier"],
            registry=r,
        )
        self.offers = Counter(
            "tierstream_offers_total",
            "Offers emitted, by kind and the tier in the offer (the tier of "
            "tierstream_offer_responses_total, so conversion can be read by tier).",
            ["kind", "tier"],
            registry=r,
        )
        self.offer_responses = Counter(
            "tierstream_offer_responses_total",
            "Offer responses attributed to an offer the customer's state remembers, by "
            "the offer's kind and tier and the outcome (accepted, declined, ignored). "
            "Unattributed ones count as tierstream_events_consumed_total{result="
            '"unmatched"}.',
            ["kind", "tier", "outcome"],
            registry=r,
        )
        self.alerts = Counter(
            "tierstream_alerts_total",
            "Alerts emitted, by kind and severity.",
            ["kind", "severity"],
            registry=r,
        )
        self.dead_letters = Counter(
            "tierstream_dead_letters_total",
            "Input records sent to dead-letters, by source topic and reason class: the "
            "limit a record broke (limits.max_key_bytes, ...), a class of the field "
            "and reason (invalid_json, missing:$.ts, invalid:currency, ...), or "
            "'internal' (processing the record raised an unexpected exception: a bug).",
            ["topic", "reason"],
            registry=r,
        )
        self.time_regressions = Counter(
            "tierstream_input_time_regressions_total",
            "Input records whose event time is more than the tolerance "
            "(--time-regression-tolerance-ms) behind the highest event time seen before "
            "them on their partition: the partition is not in event-time order (e.g. a "
            "per-customer backfill), so customers' events may be applied out of order "
            "across topics (docs/topics.md, 'Order').",
            ["topic", "partition"],
            registry=r,
        )
        self.customers = Gauge(
            "tierstream_customers",
            "Customers per tier (from the Redis tier counts, cluster-wide).",
            ["tier"],
            registry=r,
        )
        self.aum_top20_share = Gauge(
            "tierstream_aum_top20_share",
            "Share of total AUM held by the top 20% of customers (Pareto), from the "
            "Redis profiles, refreshed every minute.",
            registry=r,
        )
        self.contribution_top20_share = Gauge(
            "tierstream_contribution_top20_share",
            "Share of the customers' total estimated annual contribution (the bank's "
            "profit from them) brought by the top 20% (Pareto on profit), from the Redis "
            "profiles, refreshed every minute.",
            registry=r,
        )
        self.contribution = Gauge(
            "tierstream_contribution_cny",
            "Estimated annual contribution of the customers of each tier, CNY (the sum "
            "of their profiles' contribution_cny), refreshed every minute.",
            ["tier"],
            registry=r,
        )
        self.redis_resyncs = Counter(
            "tierstream_redis_resyncs_total",
            "Full rewrites of this worker's partitions into Redis (after Redis lost data).",
            registry=r,
        )
        self.redis_errors = Counter(
            "tierstream_redis_write_errors_total",
            "Failed Redis write attempts (each retried with backoff).",
            registry=r,
        )
        self.redis_backlog = Gauge(
            "tierstream_redis_backlog_profiles",
            "Profiles computed but not yet written to Redis.",
            registry=r,
        )
        self.redis_writes = Counter(
            "tierstream_redis_profile_writes_total",
            "Profiles written to Redis, by result (written, stale: a newer version, "
            "or the same version with the same fields, was already there).",
            ["result"],
            registry=r,
        )
        self.held = Gauge(
            "tierstream_aligner_held_events",
            "Events buffered while waiting for an earlier-in-time input (event-time "
            "alignment across topics).",
            registry=r,
        )
        self.state_cache_lookups = Counter(
            "tierstream_state_cache_lookups_total",
            "Customer states looked up in the state cache, by result (hit: no store "
            "read; miss: read from the store). A low hit share under "
            "load means the cache (--state-cache) is smaller than the active customers.",
            ["result"],
            registry=r,
        )
        self.state_cache_entries = Gauge(
            "tierstream_state_cache_entries",
            "Customer states held in memory between batches, serialized (about 1.2 KB "
            "each with 90 days of history).",
            registry=r,
        )
        self.alignment_timeouts = Counter(
            "tierstream_aligner_timeouts_total",
            "Releases that went ahead without waiting any longer for an input: reason "
            "'lag' (records known on the broker were not fetched within max_lag_wait_ms) "
            "or 'idle' (end offset unknown for max_idle_ms). Each may reorder events "
            "across topics; a rising count means fetches trail or the broker is slow.",
            ["reason"],
            registry=r,
        )
        self.restored_records = Counter(
            "tierstream_changelog_restored_records_total",
            "State changelog records copied into the local store by the bulk restore "
            "when partitions are assigned (faust's own recovery reads what it leaves).",
            registry=r,
        )
        self.restore_seconds = Counter(
            "tierstream_changelog_restore_seconds_total",
            "Time spent in the bulk changelog restore.",
            registry=r,
        )
        self.lag = Gauge(
            "tierstream_consumer_lag_messages",
            "Messages between the partition's high watermark and the worker's position.",
            ["topic", "partition"],
            registry=r,
        )
        self.erasures = Counter(
            "tierstream_erasures_total",
            "Erasure requests applied, by result: erased (state, profile and timers "
            "deleted) or not_found (nothing was held for the customer).",
            ["result"],
            registry=r,
        )
        self.api = ApiMetrics(r)

    def observe_batch(self, result: BatchTally) -> None:
        for (topic, res), n in result.counts.items():
            self.events.labels(topic, res).inc(n)
        for (topic, reason), n in result.dead_letters.items():
            self.dead_letters.labels(topic, reason).inc(n)
        for (kind, tier, outcome), n in result.offer_responses.items():
            self.offer_responses.labels(kind, tier, outcome).inc(n)
        for outcome, n in result.erasures.items():
            self.erasures.labels(outcome).inc(n)
        for d in result.decisions:
            if isinstance(d, TierChange):
                self.tier_changes.labels(d.from_tier or "none", d.to_tier).inc()
            elif isinstance(d, Offer):
                self.offers.labels(d.kind, d.tier).inc()
            elif isinstance(d, Alert):
                self.alerts.labels(d.kind, d.severity).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ApiMetrics:
    """The HTTP API's abuse limits and read volumes (streams/http/).

    ``principal`` is a token's *name* (bounded by the tokens file, validated there):
    which caller reads how much is exactly what an operator needs to see when a token
    leaks. Never a customer id.
    """

    def __init__(self, r: CollectorRegistry) -> None:
        self.profile_reads = Counter(
            "tierstream_api_profile_reads_total",
            "Profile reads answered (200 or 404) by this worker, by token name.",
            ["principal"],
            registry=r,
        )
        self.daily_reads = Gauge(
            "tierstream_api_daily_reads",
            "Profile reads of this UTC day by token name, across all workers (the count "
            "in Redis the quota is checked against, as last seen by this worker).",
            ["principal"],
            registry=r,
        )
        self.daily_quota = Gauge(
            "tierstream_api_daily_read_quota",
            "Profile reads a token may make per UTC day (TIERSTREAM_API_DAILY_READ_QUOTA; "
            "0: no quota).",
            registry=r,
        )
        self.limited = Counter(
            "tierstream_api_limited_total",
            "Requests refused with 429, by the limit they hit: client_rate, "
            "client_concurrency, auth_failures, token_rate, token_concurrency, daily_quota.",
            ["reason"],
            registry=r,
        )
        self._daily_day: dict[str, str] = {}

    def note_daily(self, principal: str, day: str, count: int) -> None:
        self._daily_day[principal] = day
        self.daily_reads.labels(principal).set(count)

    def roll_day(self, day: str) -> None:
        """Drop the counts of earlier days (the quota starts again at 0)."""
        for principal, seen in list(self._daily_day.items()):
            if seen != day:
                del self._daily_day[principal]
                self.daily_reads.remove(principal)


def observe_many(histogram: Histogram, values: Iterable[float]) -> None:
    """``histogram.observe(v)`` for every value, with one increment per bucket touched.

    The worker times every record (intake age, aligner hold); observing them one by one
    costs a lock and a bucket scan each, a few percent of the CPU per event. This bins
    the batch first. It relies on how prometheus_client keeps a histogram (per-bucket,
    non-cumulative counts and a sum; pinned by tests/streams/test_metrics.py).
    """
    bounds = histogram._upper_bounds
    buckets = histogram._buckets
    counts: dict[int, int] = {}
    total = 0.0
    for v in values:
        total += v
        i = bisect_left(bounds, v)
        counts[i] = counts.get(i, 0) + 1
    if not counts:
        return
    histogram._sum.inc(total)
    for i, n in counts.items():
        buckets[i].inc(n)
