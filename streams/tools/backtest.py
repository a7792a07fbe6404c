"""``tierstream backtest``: what a rules change would have done, before it is made.

Both rule sets -- the baseline (the packaged defaults, ``TIERSTREAM_RULES`` or
``--baseline-rules``) and the draft (``--rules``) -- decide the same input through the
same pipeline a worker runs (streams/pipeline/processor.py): the replay files of
``tierstream replay`` (streams/tools/loader.py reads them), each record put on the
partition the Java murmur2 partitioner gives its key among ``--partitions`` (where
``tierstream replay`` puts it), the partitions merged by event time exactly as the
worker's aligner releases a backlog (``merge_by_event_time``), and one final tick per
partition at ``--as-of`` (default: the newest event time), so time triggers (held
downgrades, an average-daily basis moving) are decided up to then as a worker's clock
would. ``--from-topics`` reads the input topics (and the clock's ticks) from the
beginning up to their end offsets at start instead, with their real partitions.

The result: each customer's final tier under both, the migration matrix between them,
what each decided (tier changes by direction, offers and alerts by kind), the AUM
concentration, and the customers who move (streams/tools/backtest_report.py writes
them). No Kafka or Redis without ``--from-topics``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from schemas.decoder import Decoder
from schemas.events import INPUT_TOPICS, TICK_TOPICS, Tick
from schemas.timefmt import format_ts_utc
from state.customer import CustomerState
from state.decisions import TIERS, Alert, Offer, TierChange
from state.rules import Rules
from streams.concentration import top_share
from streams.pipeline.bad_input import BadInputGuard
from streams.pipeline.processor import BatchProcessor, merge_by_event_time
from streams.pipeline.records import Decoded, RawMessage
from streams.tools.loader import ReplayStats, read_replay_file

__all__ = ["Backtest", "Outcome", "kafka_partition", "messages_from_files", "run_backtest"]

#: Decided at a time, like a worker's batches (every state written back between them).
CHUNK = 20_000


def murmur2(data: bytes) -> int:
    """Kafka's Java ``Utils.murmur2`` (the 32-bit result as an unsigned int)."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    i = 0
    while length - i >= 4:
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
        i += 4
    rest = length - i
    if rest >= 3:
        h ^= data[i + 2] << 16
    if rest >= 2:
        h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java clients (and ``tierstream replay``) give a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def messages_from_files(
    paths: Sequence[str], partitions: int, stats: ReplayStats | None = None
) -> list[RawMessage]:
    """The replay files' records as the worker would consume them after ``tierstream
    replay``: on their key's partition, in file order (offsets per topic-partition)."""
    out: list[RawMessage] = []
    offsets: dict[tuple[str, int], int] = {}
    for path in paths:
        for rec in read_replay_file(path, stats=stats, validate=False):
            if rec.partition is not None:  # a tick of the recorded clock: its partition
                if rec.partition >= partitions:
                    if stats is not None:
                        stats.note(0, f"tick for partition {rec.partition} of {partitions}")
                        stats.skipped += 1
                    continue
                p = rec.partition
            else:
                p = kafka_partition(rec.key or b"", partitions)
            off = offsets.get((rec.topic, p), 0)
            offsets[(rec.topic, p)] = off + 1
            out.append(RawMessage(rec.topic, p, off, rec.key, rec.value, rec.ts_ms))
    return out


@dataclass
class Outcome:
    """What one rule set decided over the input."""

    version: str
    tiers: dict[str, str] = field(default_factory=dict)  # customer -> final tier
    aum_fen: dict[str, int] = field(default_factory=dict)  # customer -> final AUM
    no_tier: int = 0  # customers never tiered (no AUM event)
    tier_changes: Counter[str] = field(default_factory=Counter)  # by direction
    tier_changes_by_cause: Counter[str] = field(default_factory=Counter)  # event/time/rules
    offers: Counter[str] = field(default_factory=Counter)  # by kind
    alerts: Counter[str] = field(default_factory=Counter)  # by kind
    alerts_by_severity: Counter[str] = field(default_factory=Counter)  # kind:severity
    dead_letters: int = 0

    def summary(self) -> dict[str, Any]:
        per_tier = Counter(self.tiers.values())
        aum = [Decimal(v) / 100 for v in self.aum_fen.values()]
        return {
            "version": self.version,
            "customers": len(self.tiers),
            "customers_without_tier": self.no_tier,
            "customers_per_tier": {t: per_tier.get(t, 0) for t in TIERS},
            "tier_changes_by_direction": {
                d: self.tier_changes.get(d, 0) for d in ("initial", "upgrade", "downgrade")
            },
            "tier_changes_by_cause": dict(sorted(self.tier_changes_by_cause.items())),
            "offers_by_kind": dict(sorted(self.offers.items())),
            "alerts_by_kind": dict(sorted(self.alerts.items())),
            "alerts_by_kind_and_severity": dict(sorted(self.alerts_by_severity.items())),
            "aum_cny_total": f"{sum(aum, Decimal(0)):.2f}",
            "aum_top20_share": round(top_share(aum), 6) if aum else 0.0,
            "dead_letters": self.dead_letters,
        }


@dataclass
class Backtest:
    baseline: Outcome
    new: Outcome
    events: int  # input records decided (each by both rule sets)
    as_of: int | None
    seconds: float

    def migration(self) -> list[tuple[str, str, int]]:
        """(baseline tier, new tier, customers) for every pair that occurs, diagonal
        included, in tier order; customers without a tier under both are left out."""
        pairs = Counter(
            (self.baseline.tiers[c], self.new.tiers[c])
            for c in self.baseline.tiers
            if c in self.new.tiers
        )
        rank = {t: i for i, t in enumerate(TIERS)}
        return sorted(
            ((a, b, n) for (a, b), n in pairs.items()), key=lambda x: (rank[x[0]], rank[x[1]])
        )

    def changed(self) -> list[tuple[str, str, str, int]]:
        """(customer, baseline tier, new tier, AUM fen under the new rules) of every
        customer whose final tier differs, the largest AUM first."""
        rows = [
            (c, old, self.new.tiers.get(c, ""), self.new.aum_fen.get(c, 0))
            for c, old in self.baseline.tiers.items()
            if self.new.tiers.get(c) != old
        ]
        rows += [
            (c, "", t, self.new.aum_fen.get(c, 0))
            for c, t in self.new.tiers.items()
            if c not in self.baseline.tiers
        ]
        return sorted(rows, key=lambda r: (-r[3], r[0]))

    def summary(self) -> dict[str, Any]:
        rank = {t: i for i, t in enumerate(TIERS)}
        moves = Counter(
            "stayed" if a == b else ("up" if rank[b] > rank[a] else "down")
            for a, b, n in self.migration()
            for _ in range(n)
        )
        return {
            "events": self.events,
            "as_of": format_ts_utc(self.as_of) if self.as_of is not None else None,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(2 * self.events / self.seconds) if self.seconds else 0,
            "migration": {k: moves.get(k, 0) for k in ("stayed", "up", "down")},
            "baseline": self.baseline.summary(),
            "new": self.new.summary(),
        }


def _final_ticks(partitions: Iterable[int], as_of: int) -> list[RawMessage]:
    import orjson

    return [
        RawMessage(
            TICK_TOPICS[0],
            p,
            -1,
            None,
            orjson.dumps(
                {"event_id": f"tick-{p}-{as_of}", "partition": p, "ts": format_ts_utc(as_of)}
            ),
        )
        for p in sorted(partitions)
    ]


def _chunks(items: Sequence[Decoded], size: int) -> Iterator[Sequence[Decoded]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _decide(
    rules: Rules,
    ordered: Sequence[Decoded],
    ticks: Sequence[Decoded],
    outcome: Outcome,
    progress: Callable[[int], None] | None,
    done: int,
) -> int:
    proc = BatchProcessor(rules, guard=BadInputGuard(max_share=1.0))
    store: dict[bytes, bytes] = {}
    partition_of: dict[bytes, int] = {}

    def load(_p: int, key: bytes) -> bytes | None:
        return store.get(key)

    def scan(p: int) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in store.items() if partition_of.get(k) == p]

    def tally(items: Sequence[Decoded]) -> None:
        res = proc.apply_ordered(items, load, scan)
        for p, key, value in res.states:
            store[key] = value
            partition_of[key] = p
        outcome.dead_letters += sum(n for (_t, r), n in res.counts.items() if r == "dead_letter")
        for d in res.decisions:
            if isinstance(d, TierChange):
                outcome.tier_changes[d.direction] += 1
                cause = d.cause_event_id
                kind = (
                    "rules"
                    if cause.startswith("rules:")
                    else ("time" if cause.startswith("tier:") else "event")
                )
                outcome.tier_changes_by_cause[kind] += 1
            elif isinstance(d, Offer):
                outcome.offers[d.kind] += 1
            elif isinstance(d, Alert):
                outcome.alerts[d.kind] += 1
                outcome.alerts_by_severity[f"{d.kind}:{d.severity}"] += 1

    for chunk in _chunks(ordered, CHUNK):
        tally(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done)
    if ticks:
        tally(ticks)
    for raw in store.values():
        st = CustomerState.from_bytes(raw)
        if st.tier is None:
            outcome.no_tier += 1
        else:
            outcome.tiers[st.customer_id] = st.tier
        outcome.aum_fen[st.customer_id] = st.aum_fen
    return done


def run_backtest(
    messages: Sequence[RawMessage],
    baseline: Rules,
    new: Rules,
    as_of: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Backtest:
    """Decide ``messages`` (input records and any ticks, with their partitions) under
    both rule sets, then one tick per partition at ``as_of`` (None: the newest event
    time of the input; no final tick for an empty input). ``progress(n)`` is told the
    records decided so far, out of twice their number."""
    started = time.perf_counter()
    decoder = Decoder()
    probe = BatchProcessor(baseline, decoder, BadInputGuard(max_share=1.0))
    decoded = [probe.decode(m) for m in messages]
    ordered = list(merge_by_event_time(decoded))
    times = [d.ts for d in ordered if d.event is not None]
    if as_of is None and times:
        as_of = max(times)
    partitions = {m.partition for m in messages if m.topic in (*INPUT_TOPICS, *TICK_TOPICS)}
    ticks: list[Decoded] = []
    if as_of is not None and partitions:
        for raw in _final_ticks(partitions, as_of):
            d = probe.decode(raw)
            assert isinstance(d.event, Tick), d.error
            ticks.append(d)
    base_out, new_out = Outcome(baseline.version), Outcome(new.version)
    done = _decide(baseline, ordered, ticks, base_out, progress, 0)
    _decide(new, ordered, ticks, new_out, progress, done)
    return Backtest(base_out, new_out, len(ordered), as_of, time.perf_counter() - started)


def messages_from_topics(settings: Any, timeout: float = 60.0) -> list[RawMessage]:
    """The input topics and the clock's ticks from the beginning up to their end
    offsets when called (read_committed), with their real partitions and offsets."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        settings.confluent_config(
            **{
                "group.id": f"tierstream-backtest-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
    )
    out: list[RawMessage] = []
    try:
        contract = {settings.topic(t): t for t in (*INPUT_TOPICS, *TICK_TOPICS)}
        tps: list[Any] = []
        ends: dict[tuple[str, int], int] = {}
        for full in contract:
            meta = consumer.list_topics(full, timeout=10).topics.get(full)
            if meta is None or meta.error is not None:
                raise RuntimeError(f"topic {full} not found: run `tierstream topics create`")
            for p in meta.partitions:
                lo, hi = consumer.get_watermark_offsets(TopicPartition(full, p), timeout=10)
                if hi > lo:
                    ends[(full, p)] = hi
                    tps.append(TopicPartition(full, p, lo))
        consumer.assign(tps)
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error():
                    continue
                full, p, off = m.topic(), m.partition(), m.offset()
                assert full is not None and p is not None and off is not None
                if off < ends.get((full, p), 0):
                    out.append(
                        RawMessage(
                            contract[full], p, off, m.key(), m.value(), m.timestamp()[1], full
                        )
                    )
                if off + 1 >= ends.get((full, p), 0):
                    ends.pop((full, p), None)
            # read_committed: an end offset past the last record (a transaction marker)
            if ends:
                for tp in consumer.position([TopicPartition(t, p) for t, p in ends]):
                    if tp.offset is not None and tp.offset >= ends.get((tp.topic, tp.partition), 0):
                        ends.pop((tp.topic, tp.partition), None)
        if ends:
            raise RuntimeError(f"could not read the input topics to their ends: {sorted(ends)}")
    finally:
        consumer.close()
    out.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return out
