"""Does tiering work? The KPIs of a period, from the decisions and the offer responses.

``tierstream kpi --from DATE --to DATE --out DIR`` (streams/cli/kpi.py) reads the
topics ``tier-changes``, ``offers`` and ``offer-responses`` from their beginning
(streams/tools/kpi_read.py) and feeds every record into a ``KpiInput``; ``compute``
turns that into the figures written by streams/tools/kpi_render.py. This module is pure
(no I/O, no clock), so the definitions below are tested on hand-computed periods.

The period is ``first`` .. ``last``, local days in the rules' time zone, inclusive:
from local midnight of ``first`` (``start_ms``) to local midnight after ``last``
(``end_ms``, exclusive).

* **Migration** -- each customer's tier at the start (the ``to_tier`` of its last tier
  change before ``start_ms``; ``none`` if it had none) against its tier at the end (of
  its last tier change before ``end_ms``). Customers with no tier change before
  ``end_ms`` are left out. "Last" is by event time; equal times by the order on the
  topic (one customer's records share a partition).
* **Retention** -- per tier at the start, the customers in that tier or higher at the
  end, and those who moved down (``none`` at the start is not a tier: those customers
  are in the migration only).
* **Conversion** -- the offers made within the period (their event time), by kind and
  the tier in the offer, and their outcomes. A response counts whenever it arrives
  (also after the period): each offer's outcome is its latest response by event time
  (equal times: the larger ``event_id``); offers without a response count in
  ``offers`` only. ``conversion`` = accepted / offers, 4 decimals (half even).
* **Responses that match no offer** are counted by reason and never attributed:
  ``unknown_offer`` (no offer on the topic has that ``event_id``), ``other_customer``
  (the offer was made to another customer), ``before_offer`` (stamped before the
  offer: an answer cannot precede its question). These are the worker's rules too
  (docs/topics.md), except that the job reads the whole topic, so an offer the worker
  no longer remembered still matches here.

Records are deduplicated by ``event_id`` (an output redelivered after a crash, a
response sent twice). A record that breaks its topic's contract is counted with its
reason in ``KpiInput.malformed`` and left out: never guessed at.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from sys import intern
from typing import Any, Final

from schemas.events import OFFER_OUTCOMES, OfferResponse
from state.decisions import TIER_RANK, TIERS
from state.rules import Rules

#: ``from_tier`` of a customer without a tier at the start of the period.
NO_TIER: Final = "none"
START_TIERS: Final = (NO_TIER, *TIERS)
UNMATCHED_REASONS: Final = ("unknown_offer", "other_customer", "before_offer")
_FOUR: Final = Decimal("0.0001")
_EXAMPLES: Final = 10


@dataclass(frozen=True)
class Period:
    """Local days ``first`` .. ``last`` (inclusive) and their bounds in epoch ms."""

    first: date
    last: date
    start_ms: int
    end_ms: int  # exclusive: local midnight after ``last``

    @classmethod
    def of(cls, first: date, last: date, rules: Rules) -> Period:
        if last < first:
            raise ValueError(f"the period ends ({last}) before it starts ({first})")
        epoch = date(1970, 1, 1).toordinal()
        start = rules.day_start_ms(first.toordinal() - epoch)
        end = rules.day_start_ms(last.toordinal() - epoch + 1)
        return cls(first, last, start, end)


#: (event time, partition, offset, tier): the order of a customer's tier changes
_Point = tuple[int, int, int, str]


@dataclass(slots=True)
class _Offer:
    customer_id: str
    ts: int
    kind: str
    tier: str
    in_period: bool
    #: the latest matched response so far: (ts, event_id, outcome)
    answer: tuple[int, str, str] | None = None


@dataclass
class KpiInput:
    """Everything the KPIs need from the three topics, fed record by record (in any
    order: ``compute`` matches responses to offers at the end)."""

    period: Period
    #: customer -> last tier change before the start / before the end
    before_start: dict[str, _Point] = field(default_factory=dict)
    before_end: dict[str, _Point] = field(default_factory=dict)
    #: offer event_id (as its 16 bytes) -> the offer; strings interned: a KPI run holds
    #: every offer and response of the topics in memory
    offers: dict[bytes, _Offer] = field(default_factory=dict)
    #: response event_id -> (customer, ts, offer event_id as 16 bytes, outcome)
    responses: dict[str, tuple[str, int, bytes, str]] = field(default_factory=dict)
    #: (topic, reason) -> records left out; and the first few, located
    malformed: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    #: records read per topic (valid or not, duplicates included)
    records: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)

    def add_tier_change(self, rec: dict[str, Any], partition: int = 0, offset: int = 0) -> None:
        """A valid ``tier-changes`` record (schemas/outputs.py: ``ts_ms`` added)."""
        self.records["tier-changes"] += 1
        ts = int(rec["ts_ms"])
        point = (ts, partition, offset, intern(str(rec["to_tier"])))
        cid = intern(str(rec["customer_id"]))
        if ts < self.period.start_ms:
            _keep_latest(self.before_start, cid, point)
        if ts < self.period.end_ms:
            _keep_latest(self.before_end, cid, point)

    def add_offer(self, rec: dict[str, Any]) -> None:
        """A valid ``offers`` record (with ``ts_ms``)."""
        self.records["offers"] += 1
        eid = bytes.fromhex(rec["event_id"])  # 32 hex (the schema): 16 bytes kept
        if eid in self.offers:
            self.duplicates["offers"] += 1
            return
        ts = int(rec["ts_ms"])
        p = self.period
        self.offers[eid] = _Offer(
            intern(str(rec["customer_id"])),
            ts,
            intern(str(rec["kind"])),
            intern(str(rec["tier"])),
            p.start_ms <= ts < p.end_ms,
        )

    def add_response(self, ev: OfferResponse) -> None:
        """A valid ``offer-responses`` record (decoded by the worker's decoder)."""
        self.records["offer-responses"] += 1
        if ev.event_id in self.responses:
            self.duplicates["offer-responses"] += 1
            return
        self.responses[ev.event_id] = (
            intern(ev.customer_id),
            ev.ts,
            bytes.fromhex(ev.offer_event_id),  # 32 hex (the schema)
            intern(ev.outcome),
        )

    def add_malformed(self, topic: str, where: str, field_: str, reason: str) -> None:
        """A record that breaks ``topic``'s contract: counted by field, never used."""
        self.records[topic] += 1
        self.malformed[(topic, field_)] += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append(f"{topic} {where}: {field_}: {reason}")


def _keep_latest(points: dict[str, _Point], cid: str, point: _Point) -> None:
    cur = points.get(cid)
    if cur is None or point[:3] > cur[:3]:
        points[cid] = point


@dataclass(frozen=True)
class ConversionRow:
    kind: str
    tier: str
    offers: int
    accepted: int
    declined: int
    ignored: int

    @property
    def conversion(self) -> Decimal:
        return (Decimal(self.accepted) / Decimal(self.offers)).quantize(_FOUR, ROUND_HALF_EVEN)


@dataclass(frozen=True)
class RetentionRow:
    tier: str
    customers: int
    same_or_higher: int
    moved_down: int

    @property
    def retention(self) -> Decimal | None:
        if not self.customers:
            return None
        ratio = Decimal(self.same_or_higher) / Decimal(self.customers)
        return ratio.quantize(_FOUR, ROUND_HALF_EVEN)


@dataclass(frozen=True)
class ResponseStats:
    #: responses matched to an offer of the period / of which stamped after its end
    to_period_offers: int = 0
    after_period: int = 0
    #: responses matched to an offer made outside the period (not in the conversion)
    to_other_offers: int = 0
    #: offers of the period with a response / without one
    offers_answered: int = 0
    offers_unanswered: int = 0
    unmatched: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Kpis:
    period: Period
    #: (from_tier, to_tier) -> customers; from_tier may be "none"
    migration: dict[tuple[str, str], int]
    retention: list[RetentionRow]
    conversion: list[ConversionRow]
    responses: ResponseStats
    customers: int  # in the migration: with a tier by the end of the period


def compute(inp: KpiInput) -> Kpis:
    """The period's figures (see the module doc for every definition)."""
    migration: Counter[tuple[str, str]] = Counter()
    for cid, end_point in inp.before_end.items():
        start_point = inp.before_start.get(cid)
        start = start_point[3] if start_point is not None else NO_TIER
        migration[(start, end_point[3])] += 1
    retention = []
    for tier in TIERS:
        rows = {to: n for (frm, to), n in migration.items() if frm == tier}
        up = sum(n for to, n in rows.items() if TIER_RANK[to] >= TIER_RANK[tier])
        down = sum(rows.values()) - up
        retention.append(RetentionRow(tier, up + down, up, down))
    stats = _match_responses(inp)
    conversion = _conversion(inp)
    return Kpis(
        period=inp.period,
        migration=dict(migration),
        retention=retention,
        conversion=conversion,
        responses=stats,
        customers=len(inp.before_end),
    )


def _match_responses(inp: KpiInput) -> ResponseStats:
    unmatched: Counter[str] = Counter()
    to_period = after = to_other = 0
    end = inp.period.end_ms
    for o in inp.offers.values():
        o.answer = None  # so that compute() can run again on the same input
    for rid, (cid, ts, offer_id, outcome) in inp.responses.items():
        offer = inp.offers.get(offer_id)
        if offer is None:
            unmatched["unknown_offer"] += 1
            continue
        if offer.customer_id != cid:
            unmatched["other_customer"] += 1
            continue
        if ts < offer.ts:
            unmatched["before_offer"] += 1
            continue
        if not offer.in_period:
            to_other += 1
            continue
        to_period += 1
        after += ts >= end
        answer = (ts, rid, outcome)
        if offer.answer is None or answer[:2] > offer.answer[:2]:
            offer.answer = answer
    in_period = [o for o in inp.offers.values() if o.in_period]
    answered = sum(o.answer is not None for o in in_period)
    return ResponseStats(
        to_period_offers=to_period,
        after_period=after,
        to_other_offers=to_other,
        offers_answered=answered,
        offers_unanswered=len(in_period) - answered,
        unmatched={r: unmatched[r] for r in UNMATCHED_REASONS},
    )


def _conversion(inp: KpiInput) -> list[ConversionRow]:
    """Per (kind, tier in the offer); call after ``_match_responses``."""
    counts: dict[tuple[str, str], Counter[str]] = {}
    for o in inp.offers.values():
        if not o.in_period:
            continue
        c = counts.setdefault((o.kind, o.tier), Counter())
        c["offers"] += 1
        if o.answer is not None:
            c[o.answer[2]] += 1
    rows = [
        ConversionRow(kind, tier, c["offers"], *(c[o] for o in OFFER_OUTCOMES))
        for (kind, tier), c in counts.items()
    ]
    rows.sort(key=lambda r: (r.kind, TIER_RANK.get(r.tier, len(TIERS))))
    return rows
