"""An independent reference of the tiering rules, for checking the core and the worker.

Written from docs/rules.md and the rules file, not from state/'s code, and importing
nothing from state/ or streams/ (only the standard library): if the core and this
module agree on randomized banks, a wrong rule would have to be wrong twice, in two
unrelated implementations. It is deliberately simple and slow: whole histories kept,
exact ``Fraction`` arithmetic, no caches.

What it recomputes, per customer, from the input events as the JSON dicts that go on
the topics:

* **tiers**: floors, the downgrade band (hysteresis), the initial tier, the rules'
  basis (``current`` or ``avg_daily``); AUM = the CNY values of all accounts that are
  not loans, each account last-writer-wins by event time (ties: the larger 64-bit
  BLAKE2b of the event id); late transactions; deduplication; the downgrade policies
  (``min_days_in_tier``, ``downgrade_grace_days``, ``review``) and the evaluations
  between events that time alone causes ("Tier policies and time"), by brute force:
  every local midnight and every instant a policy names is evaluated, and only those
  that change something leave a trace (the core computes the next such instant);
* **offers** that only tier entries and transactions cause -- ``wealth_products``,
  ``relationship_manager``, ``private_banking_invitation``, ``sme_credit``,
  ``digital_banking`` -- with consent from the latest profile and the per-kind cap.
  (Timer offers, and ``risk_assessment_due``, whose cap timers share, are left out.)
* **alerts** ``large_outflow`` and ``aum_drop`` with severities and the cooldown;
* **offer responses** (topic ``offer-responses``, docs/rules.md "Offer responses"):
  which of the offers above a response is attributed to (by the offer's ``event_id``,
  derived as docs/topics.md says, made at or before the response, among the
  customer's latest ``answerable_offers``), the kind's latest outcome, and the decline
  cool-down (``after_decline_days``) that withholds later offers of a declined kind;
  ``responses`` counts the attributed ones by (kind, the offer's tier, outcome);
* **contribution** (issue 22; docs/value-models.md, "Contribution"): each customer's
  estimated annual contribution at the end, from the balances in force and every
  applied transaction's income, booked by local calendar month.

API: ``run(events, rules_path=None, as_of=None, rules_version="") -> ReferenceResult``
(``as_of``: a final tick for everyone, as ``tierstream backtest`` ends with;
``rules_version``: only goes into the offers' ids, for attributing responses);
``result_from_records`` builds the same shape from the records on the output topics
(tier-changes, offers, alerts), and ``diff`` lists where two results differ.
Interpretations where the document leaves a choice are marked "Reading:" below.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "ALERT_KINDS",
    "DEFAULT_RULES",
    "OFFER_KINDS",
    "AlertRef",
    "OfferRef",
    "ReferenceResult",
    "TierChangeRef",
    "diff",
    "load",
    "offer_id",
    "result_from_records",
    "run",
    "topic_of",
]

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "state" / "rules_default.toml"
TIERS = ("mass", "affluent", "hnw", "private")
RANK = {t: i for i, t in enumerate(TIERS)}
#: The offer and alert kinds this reference decides (and compares).
OFFER_KINDS = (
    "wealth_products",
    "relationship_manager",
    "private_banking_invitation",
    "sme_credit",
    "digital_banking",
    "branch_priority",
)
ALERT_KINDS = ("large_outflow", "aum_drop")
TIER_OFFER = {"affluent": "wealth_products", "hnw": "relationship_manager",
              "private": "private_banking_invitation"}  # fmt: skip
#: "one debit (withdrawal, transfer_out, card_payment, loan_repayment, fee)"
DEBITS = frozenset({"withdrawal", "transfer_out", "card_payment", "loan_repayment", "fee"})
DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: docs/value-models.md: "wealth, fund, bond and insurance balances" earn the wealth fee
INVESTMENTS = frozenset({"wealth", "fund", "bond", "insurance"})


# ------------------------------------------------------------------ results


@dataclass(frozen=True, order=True)
class TierChangeRef:
    ts: int
    from_tier: str | None
    to_tier: str
    direction: str
    cause_event_id: str


@dataclass(frozen=True, order=True)
class OfferRef:
    customer_id: str
    ts: int
    kind: str
    tier: str
    cause_event_id: str


@dataclass(frozen=True, order=True)
class AlertRef:
    customer_id: str
    ts: int
    kind: str
    severity: str
    cause_event_id: str


@dataclass
class ReferenceResult:
    """Tier changes per customer in order; offers and alerts (of the kinds above);
    the final tier of each customer; events rejected (unknown currency); and counts
    of the situations met (duplicates, late transactions, ties, events out of order),
    so a test can tell that its data reached them."""

    tier_changes: dict[str, list[TierChangeRef]] = field(default_factory=dict)
    offers: list[OfferRef] = field(default_factory=list)
    alerts: list[AlertRef] = field(default_factory=list)
    tiers: dict[str, str] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    #: attributed offer responses by (offer kind, the offer's tier, outcome)
    responses: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: customer -> estimated annual contribution at the end, CNY with 2 decimals
    contributions: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ rules


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> None:
    """docs/rules.md: "tables are merged key by key"."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _frac(value: Any) -> Fraction:
    return Fraction(Decimal(str(value)))


@dataclass(frozen=True)
class Rules:
    zone: ZoneInfo
    floors: dict[str, Fraction]  # CNY
    band: Fraction
    basis: str
    avg_days: int
    fx: dict[str, Fraction]
    window_days: int
    exclude_types: frozenset[str]
    dedup_size: int
    dedup_days: int
    offer_cooldown_days: dict[str, int]
    after_decline_days: dict[str, int]
    answerable_offers: int
    digital_max_age: int
    digital_share_over: Fraction
    digital_min_tx: int
    digital_max_avg: Fraction  # CNY
    branch_min_tx: int
    branch_share_over: Fraction
    branch_min_avg: Fraction  # CNY
    deposit_nim: Fraction
    wealth_fee_rate: Fraction
    loan_spread: Fraction
    card_interchange: Fraction
    fees: dict[str, Fraction]  # CNY per transaction of a type
    outflow_ratio: Fraction
    outflow_amount: Fraction
    drop_ratio: Fraction
    drop_critical_ratio: Fraction
    drop_days: int
    alert_cooldown_days: dict[str, int]
    min_days: int
    grace_days: int
    review: str  # none | month | quarter


def load(rules_path: str | Path | None = None) -> Rules:
    """The packaged defaults, overlaid with the user file at ``rules_path``."""
    table = tomllib.loads(DEFAULT_RULES.read_text("utf-8"))
    if rules_path is not None:
        _merge(table, tomllib.loads(Path(rules_path).read_text("utf-8")))
    t, o, a, v = table["tiers"], table["offers"], table["alerts"], table["value"]
    return Rules(
        zone=ZoneInfo(table["timezone"]),
        floors={"mass": Fraction(0), **{k: _frac(t[k]) for k in TIERS[1:]}},
        band=_frac(t["downgrade_band"]),
        basis=t["basis"],
        avg_days=int(t["avg_days"]),
        fx={k: _frac(v) for k, v in table["fx"].items()},
        window_days=int(table["windows"]["days"]),
        exclude_types=frozenset(table["windows"]["exclude_types"]),
        dedup_size=int(table["dedup"]["size"]),
        dedup_days=int(table["dedup"]["days"]),
        offer_cooldown_days=dict(o["cooldown_days"]),
        after_decline_days=dict(o["after_decline_days"]),
        answerable_offers=int(o["answerable_offers"]),
        digital_max_age=int(o["digital_banking_max_age"]),
        digital_share_over=_frac(o["digital_banking_share_over"]),
        digital_min_tx=int(o["digital_banking_min_transactions"]),
        digital_max_avg=_frac(o["digital_banking_max_avg_cny"]),
        branch_min_tx=int(o["branch_priority_min_transactions"]),
        branch_share_over=_frac(o["branch_priority_share_over"]),
        branch_min_avg=_frac(o["branch_priority_min_avg_cny"]),
        deposit_nim=_frac(v["deposit_nim"]),
        wealth_fee_rate=_frac(v["wealth_fee_rate"]),
        loan_spread=_frac(v["loan_spread"]),
        card_interchange=_frac(v["card_interchange"]),
        fees={k: _frac(x) for k, x in v["fees"].items()},
        outflow_ratio=_frac(a["large_outflow_ratio"]),
        outflow_amount=_frac(a["large_outflow_amount_cny"]),
        drop_ratio=_frac(a["aum_drop_ratio"]),
        drop_critical_ratio=_frac(a["aum_drop_critical_ratio"]),
        drop_days=int(a["aum_drop_days"]),
        alert_cooldown_days=dict(a["cooldown_days"]),
        min_days=int(t["min_days_in_tier"]),
        grace_days=int(t["downgrade_grace_days"]),
        review=str(t["review"]),
    )


# ------------------------------------------------------------------ values


def parse_ts(text: str) -> int:
    """RFC 3339 with an offset -> epoch ms, floored (docs/topics.md)."""
    moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _fen(amount: Any, rate: Fraction) -> int:
    """Docs: "converted to CNY with the [fx] table and rounded half-to-even to the fen"."""
    return round(_frac(amount) * rate * 100)  # round() of a Fraction: half to even


def format_ts(ms: int) -> str:
    """Epoch ms -> RFC 3339 UTC with milliseconds (docs/topics.md), e.g. in trigger ids."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _month(day: int) -> int:
    """The calendar month of a local day number, as year * 12 + month - 1."""
    d = date(1970, 1, 1) + timedelta(days=day)
    return d.year * 12 + d.month - 1


def _month_start(month: int) -> int:
    """The local day number of the 1st of a month."""
    return (date(month // 12, month % 12 + 1, 1) - date(1970, 1, 1)).days


def _tie(event_id: str) -> int:
    """Docs: "the larger 64-bit BLAKE2b hash of the event_id wins" (read big-endian)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


def offer_id(customer_id: str, cause_event_id: str, kind: str, rules_version: str) -> str:
    """docs/topics.md: an offer's ``event_id`` is the first 32 hex digits of SHA-256
    over the customer id, the cause, ``offer:<kind>`` and the rules version, joined by
    NUL."""
    raw = "\x00".join((customer_id, cause_event_id, f"offer:{kind}", rules_version)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def topic_of(doc: Mapping[str, Any]) -> str:
    """The input topic a document belongs to, from its required fields."""
    if "amount" in doc:
        return "transactions"
    if "balance" in doc:
        return "balances"
    if "segment" in doc:
        return "customer-profiles"
    if "score" in doc:
        return "risk-assessments"
    if "offer_event_id" in doc:
        return "offer-responses"
    return "contacts"


# ------------------------------------------------------------------ one customer


@dataclass
class _Account:
    ts: int
    tie: int
    fen: int
    product: str  # "" when only seen on transactions


@dataclass
class _Customer:
    cid: str
    today: int | None = None  # local day of the newest event applied
    accounts: dict[str, _Account] = field(default_factory=dict)
    memory: list[tuple[str, int]] = field(default_factory=list)  # (event id, day applied)
    tier: str | None = None
    profile: tuple[int, int] | None = None  # (ts, tie) of the profile in force
    segment: str | None = None
    consent: bool = False
    birth: date | None = None
    window: dict[int, list[tuple[str, int]]] = field(default_factory=dict)  # day -> (ch, fen)
    ledger_from: int | None = None  # the day its months are known from
    income: dict[int, int] = field(default_factory=dict)  # calendar month -> fen
    levels: dict[int, tuple[int, int]] = field(default_factory=dict)  # day -> (high, close)
    offers_at: dict[str, list[int]] = field(default_factory=dict)
    alerts_at: dict[str, list[int]] = field(default_factory=dict)
    made: list[tuple[str, int, str, str]] = field(default_factory=list)  # id, ts, kind, tier
    answers: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # kind -> ts, tie, out
    tier_since: int = 0  # when the current tier was entered
    below_since: int | None = None  # grace: since when every evaluation found it below
    mark: int | None = None  # the latest event time (or final tick) evaluated up to

    def aum(self) -> int:
        """Docs: "sum of the CNY values of all accounts whose product is not loan"."""
        return sum(a.fen for a in self.accounts.values() if a.product != "loan")


class _Bank:
    def __init__(self, rules: Rules, rules_version: str = "") -> None:
        self.r = rules
        self.version = rules_version
        self.customers: dict[str, _Customer] = {}
        self.out = ReferenceResult()

    def local_day(self, ts: int) -> int:
        moment = (_EPOCH + timedelta(milliseconds=ts)).astimezone(self.r.zone)
        return (moment.date() - date(1970, 1, 1)).days

    def midnight(self, day: int) -> int:
        """Epoch ms of the local midnight starting local day ``day``."""
        local = datetime.combine(date(1970, 1, 1) + timedelta(days=day), time(0), self.r.zone)
        return (local - _EPOCH) // timedelta(milliseconds=1)

    def is_review(self, ts: int) -> bool:
        """Docs: "the local midnight that starts a month, or a quarter (1 January,
        April, July, October)"."""
        moment = (_EPOCH + timedelta(milliseconds=ts)).astimezone(self.r.zone)
        if (moment.day, moment.hour, moment.minute, moment.second, moment.microsecond) != (
            1, 0, 0, 0, 0,
        ):  # fmt: skip
            return False
        return self.r.review == "month" or moment.month in (1, 4, 7, 10)

    # -------------------------------------------------------------- dispatch

    def event(self, topic: str, doc: Mapping[str, Any]) -> None:
        r = self.r
        cid = doc["customer_id"]
        if topic == "offer-responses" and not (
            cid in self.customers and self.customers[cid].memory
        ):
            # "for an unknown customer nothing happens and no state is created"
            self.out.counts["response_no_customer"] += 1
            return
        c = self.customers.setdefault(cid, _Customer(cid))
        eid = doc["event_id"]
        if topic in ("transactions", "balances") and doc["currency"] not in r.fx:
            self.out.rejected.append(eid)  # "rejected to dead letters ... changes nothing"
            return
        if self._remembered(c, eid):
            self.out.counts["duplicate"] += 1
            return  # "changes nothing ... and emits nothing"
        ts = parse_ts(doc["ts"])
        day = self.local_day(ts)
        if c.today is not None and day < c.today:
            self.out.counts["out_of_order"] += 1
        if not self._late_only(c, topic, doc, ts, day):
            # "before an input event is applied, every such instant after the customer's
            # timer watermark and up to the event's time is evaluated first"
            self.catch_up(c, ts)
        if topic == "transactions":
            self._transaction(c, doc, ts, day)
        elif topic == "balances":
            self._balance(c, doc, ts, day)
        else:
            if topic == "customer-profiles":
                self._profile(c, doc, ts)
            self._advance(c, day)
            if topic == "offer-responses":
                self._response(c, doc, ts)
            self._remember(c, eid)

    def _late_only(
        self, c: _Customer, topic: str, doc: Mapping[str, Any], ts: int, day: int
    ) -> bool:
        """A late transaction with nothing newer to apply: "counted ... but not applied"
        (so it brings no time either)."""
        if topic != "transactions" or c.today is None or day > c.today - self.r.window_days:
            return False
        bal, cur = doc.get("balance_after"), c.accounts.get(doc["account_id"])
        newer = bal is not None and (cur is None or (ts, _tie(doc["event_id"])) > (cur.ts, cur.tie))
        return not newer

    # -------------------------------------------------------------- time

    def catch_up(self, c: _Customer, until: int) -> None:
        """Evaluate the tier at every instant in (watermark, until] at which time alone
        can change it, in time order; then the watermark is ``until``. Brute force:
        every local midnight, and each instant a minimum stay, a grace period or a
        review names (recomputed after every evaluation: a tier change moves them)."""
        if c.mark is None:
            c.mark = until  # "a new customer starts its timers at its first event"
            return
        if until <= c.mark:
            return
        r, cursor = self.r, c.mark
        while c.tier is not None:
            nexts = [self.midnight(self.local_day(cursor) + 1)]
            if r.min_days and c.tier_since + r.min_days * DAY_MS > cursor:
                nexts.append(c.tier_since + r.min_days * DAY_MS)
            grace_end = c.below_since + r.grace_days * DAY_MS if c.below_since is not None else 0
            if r.grace_days and grace_end > cursor:
                nexts.append(grace_end)
            instant = min(nexts)  # review instants are midnights: among them already
            if instant > until:
                break
            day = self.local_day(instant)
            self._decide(c, self._basis(c, max(day, c.today or day)), instant,
                         f"tier:{format_ts(instant)}")  # fmt: skip
            cursor = instant
        c.mark = until

    def _remembered(self, c: _Customer, eid: str) -> bool:
        """Docs: "the last 256 events applied to a customer ... as long as they were applied
        no more than 7 days (of the customer's event time) ago"."""
        live = c.memory[-self.r.dedup_size :]
        return any(e == eid and c.today is not None and c.today - d <= self.r.dedup_days
                   for e, d in live)  # fmt: skip

    def _remember(self, c: _Customer, eid: str) -> None:
        # Reading: a late transaction is remembered too (its redelivery is late again
        # and emits nothing either way; it only takes a place among the last 256).
        c.memory.append((eid, c.today if c.today is not None else 0))

    def _advance(self, c: _Customer, day: int) -> None:
        if c.ledger_from is None:  # "from the customer's first event on"
            c.ledger_from = day if c.today is None else max(day, c.today)
        if c.today is None or day > c.today:
            c.today = day
        # "Daily buckets cover the last 90 local days (today included)"
        for d in [d for d in c.window if d <= c.today - self.r.window_days]:
            del c.window[d]

    def _profile(self, c: _Customer, doc: Mapping[str, Any], ts: int) -> None:
        key = (ts, _tie(doc["event_id"]))
        if c.profile is None or key > c.profile:  # last writer by event time wins
            c.profile = key
            c.segment = doc["segment"]
            c.consent = bool(doc["marketing_consent"])
            birth = doc.get("birth_date")
            c.birth = date.fromisoformat(birth) if birth else None

    def _response(self, c: _Customer, doc: Mapping[str, Any], ts: int) -> None:
        """Docs: attributed "when the customer's state remembers the offer it names
        (offer_event_id) and the offer was made at or before the response's event
        time"; the kind's latest outcome is "the attributed response with the latest
        event time (equal times: the larger event key)"."""
        wanted = doc["offer_event_id"]
        window = c.made[-self.r.answerable_offers :]
        made = next((m for m in reversed(window) if m[0] == wanted and m[1] <= ts), None)
        if made is None:
            named = any(m[0] == wanted for m in window)
            self.out.counts["response_before_offer" if named else "response_unknown"] += 1
            return
        _, _, kind, tier = made
        outcome = doc["outcome"]
        self.out.responses[(kind, tier, outcome)] += 1
        key = (ts, _tie(doc["event_id"]))
        cur = c.answers.get(kind)
        if cur is None or key > cur[:2]:
            c.answers[kind] = (*key, outcome)

    # -------------------------------------------------------------- AUM events

    def _set(
        self, c: _Customer, account: str, ts: int, eid: str, fen: int, product: str | None
    ) -> bool:
        """Last writer by event time wins; True if this one did."""
        cur = c.accounts.get(account)
        tie = _tie(eid)
        if cur is not None and ts == cur.ts:
            self.out.counts["tie"] += 1
        if cur is not None and (ts, tie) <= (cur.ts, cur.tie):
            self.out.counts["older_balance"] += 1
            return False
        keep = cur.product if cur is not None else ""
        c.accounts[account] = _Account(ts, tie, fen, keep if product is None else product)
        return True

    def _balance(self, c: _Customer, doc: Mapping[str, Any], ts: int, day: int) -> None:
        aum_before, tier_before = c.aum(), c.tier
        self._advance(c, day)
        fen = _fen(doc["balance"], self.r.fx[doc["currency"]])
        self._set(c, doc["account_id"], ts, doc["event_id"], fen, doc["product"])
        self._remember(c, doc["event_id"])
        self._after_aum(c, doc, ts, aum_before, tier_before)

    def _transaction(self, c: _Customer, doc: Mapping[str, Any], ts: int, day: int) -> None:
        r, eid = self.r, doc["event_id"]
        rate = r.fx[doc["currency"]]
        # "A transaction on a day at least 90 days before the customer's today is late"
        late = c.today is not None and day <= c.today - r.window_days
        bal = doc.get("balance_after")
        cur = c.accounts.get(doc["account_id"])
        newer = bal is not None and (cur is None or (ts, _tie(eid)) > (cur.ts, cur.tie))
        if late:
            self.out.counts["late_balance" if newer else "late"] += 1
        if late and not newer:
            self._remember(c, eid)  # "counted (late_events) but not applied"
            return
        aum_before, tier_before = c.aum(), c.tier
        self._advance(c, day)
        counted = not late and doc["type"] not in r.exclude_types
        amount = _fen(doc["amount"], rate)
        if counted:
            c.window.setdefault(day, []).append((doc["channel"], amount))
        if not late:  # "every transaction that is not late (fees and interest too)"
            month = _month(day)
            c.income[month] = c.income.get(month, 0) + self._income(doc["type"], amount)
        if newer:
            # "An account only ever seen on transactions has an unknown product"
            self._set(c, doc["account_id"], ts, eid, _fen(bal, rate), None)
        self._remember(c, eid)
        self._after_aum(c, doc, ts, aum_before, tier_before)
        if late:
            return  # Reading: only the balance of a late transaction is applied
        if doc["type"] in DEBITS:
            self._large_outflow(c, doc, ts, amount, aum_before, tier_before)
        if counted:
            self._digital_banking(c, doc, ts, day)
            self._branch_priority(c, doc, ts)

    def _after_aum(
        self,
        c: _Customer,
        doc: Mapping[str, Any],
        ts: int,
        aum_before: int,
        tier_before: str | None,
    ) -> None:
        aum = c.aum()
        assert c.today is not None
        high, _ = c.levels.get(c.today, (aum, aum))
        c.levels[c.today] = (max(high, aum), aum)  # intraday high, end-of-day level
        self._retier(c, doc, ts)
        self._aum_drop(c, doc, ts, aum, aum_before, tier_before)

    # -------------------------------------------------------------- tiers

    def _basis(self, c: _Customer, today: int | None = None) -> Fraction:
        """The basis with ``today`` as the last day averaged (default the customer's
        today; a later day between events: "every day after the last AUM sample at the
        current AUM")."""
        aum = c.aum()
        if self.r.basis == "current":
            return Fraction(aum)
        # "each of the last avg_days local days counts with its end-of-day AUM (today:
        # the current AUM); a day without a change carries the previous level forward;
        # days before the customer's first AUM sample are left out"
        assert c.today is not None
        if today is None:
            today = c.today
        total, counted, carry = 0, 0, None
        start = today - self.r.avg_days + 1
        for d in sorted(c.levels):
            if d < start:
                carry = c.levels[d][1]
        for d in range(start, today + 1):
            if d in c.levels:
                carry = c.levels[d][1]
            if d == c.today:
                carry = aum
            if carry is not None:
                total += carry
                counted += 1
        return Fraction(total, counted) if counted else Fraction(aum)

    def _retier(self, c: _Customer, doc: Mapping[str, Any], ts: int) -> None:
        self._decide(c, self._basis(c), ts, doc["event_id"])

    def _decide(self, c: _Customer, basis: Fraction, ts: int, cause: str) -> None:
        """Docs: hysteresis, then "a downgrade that hysteresis allows waits until every
        policy allows it; an upgrade never waits"."""
        r = self.r
        floors = {t: f * 100 for t, f in r.floors.items()}  # fen
        # "mass < 500k <= affluent": mass is everything below affluent (AUM may be < 0)
        target = max((t for t in TIERS if basis >= floors[t]), key=RANK.__getitem__, default="mass")
        old = c.tier
        if old is None:
            direction = "initial"
        elif RANK[target] > RANK[old]:
            direction = "upgrade"
        elif RANK[target] < RANK[old] and basis < floors[old] * (1 - r.band):
            direction = "downgrade"
            below = None
            if r.grace_days:  # "the first evaluation since which every evaluation found it below"
                below = c.below_since if c.below_since is not None else ts
            waits = (
                (r.min_days and ts < c.tier_since + r.min_days * DAY_MS)
                or (below is not None and ts < below + r.grace_days * DAY_MS)
                or (r.review != "none" and not self.is_review(ts))
            )
            if waits:
                c.below_since = below
                return
        else:
            c.below_since = None  # "an evaluation at or above it ... ends the count"
            return
        c.tier, c.tier_since, c.below_since = target, ts, None
        self.out.tier_changes.setdefault(c.cid, []).append(
            TierChangeRef(ts, old, target, direction, cause)
        )
        if direction == "downgrade":
            return  # "Downgrades send no offers."
        kind = TIER_OFFER.get(target)
        if kind is not None:
            self._offer(c, kind, ts, cause)
        if c.segment == "sme" and RANK[target] >= RANK["affluent"]:
            self._offer(c, "sme_credit", ts, cause)

    # -------------------------------------------------------------- offers

    def _offer(self, c: _Customer, kind: str, ts: int, cause: str) -> None:
        """Docs: "Offers need marketing consent on the latest profile (no profile = no
        consent) ... At most one offer of a kind per customer per 30 days (event
        time)": the cap runs from the latest offer of the kind, so an offer goes out
        only at least 30 days after it (one that an out-of-order event would date
        earlier gets none)."""
        if not c.consent:
            return
        cooldown = self.r.offer_cooldown_days[kind] * DAY_MS
        earlier = c.offers_at.get(kind)
        if earlier and ts < max(earlier) + cooldown:
            return
        # "an offer of a kind whose latest outcome is declined, dated at or after the
        # decline and less than after_decline_days after it, is withheld"
        answer = c.answers.get(kind)
        hold = self.r.after_decline_days[kind] * DAY_MS
        if answer is not None and answer[2] == "declined" and 0 <= ts - answer[0] < hold:
            self.out.counts["declined_hold"] += 1
            return
        c.offers_at.setdefault(kind, []).append(ts)
        tier = c.tier or "mass"
        self.out.offers.append(OfferRef(c.cid, ts, kind, tier, cause))
        c.made.append((offer_id(c.cid, cause, kind, self.version), ts, kind, tier))

    def _average(self, c: _Customer) -> tuple[list[str], Fraction]:
        """The window's channels and its average transaction in CNY. Docs: "average
        amount" in fen, rounded half up."""
        items = [x for d in c.window.values() for x in d]
        if not items:
            return [], Fraction(0)
        total, n = sum(f for _, f in items), len(items)
        avg_fen = total // n + (1 if 2 * (total % n) >= n else 0)
        return [ch for ch, _ in items], Fraction(avg_fen, 100)

    def _digital_banking(self, c: _Customer, doc: Mapping[str, Any], ts: int, day: int) -> None:
        """Docs: "age < 30, at least 5 transactions in the window, more than 50% of them
        at branch or ATM, and an average transaction below 50,000 CNY". Reading: age on
        the transaction's local date."""
        r = self.r
        channels, avg = self._average(c)
        if c.birth is None or len(channels) < r.digital_min_tx:
            return
        offline = sum(ch in ("branch", "atm") for ch in channels)
        if not offline > r.digital_share_over * len(channels) or not avg < r.digital_max_avg:
            return
        on = date(1970, 1, 1) + timedelta(days=day)
        age = on.year - c.birth.year - ((on.month, on.day) < (c.birth.month, c.birth.day))
        if age >= r.digital_max_age:
            return
        self._offer(c, "digital_banking", ts, doc["event_id"])

    def _branch_priority(self, c: _Customer, doc: Mapping[str, Any], ts: int) -> None:
        """Docs: "any age: at least 5 transactions in the window, more than 50% of them
        at the branch, and an average transaction of at least 50,000 CNY"."""
        r = self.r
        channels, avg = self._average(c)
        if len(channels) < r.branch_min_tx:
            return
        branch = sum(ch == "branch" for ch in channels)
        if branch > r.branch_share_over * len(channels) and avg >= r.branch_min_avg:
            self._offer(c, "branch_priority", ts, doc["event_id"])

    # -------------------------------------------------------------- contribution

    def _income(self, kind: str, fen: int) -> int:
        """Docs: a transaction's income: the fee per transaction of its type, plus the
        card interchange on a card payment (rounded half-even to the fen) or a fee
        posting's amount in full."""
        r = self.r
        income = round(r.fees[kind] * 100)
        if kind == "card_payment":
            income += round(r.card_interchange * fen)  # round(Fraction): half to even
        elif kind == "fee":
            income += fen
        return income

    def contribution(self, c: _Customer) -> str:
        """Docs (docs/value-models.md, "Contribution"): balances at their annual rates
        (deposits and accounts seen only on transactions at the NIM, investments at the
        wealth fee rate, loans of either sign and overdrawn deposits at the loan spread)
        plus the income of the complete calendar months of the last 12 that the bank
        knew the customer for in full, averaged and times 12; half-even to the fen."""
        r = self.r
        balance = Fraction(0)
        for a in c.accounts.values():
            if a.product == "loan":
                balance += r.loan_spread * abs(a.fen)
            elif a.product in INVESTMENTS:
                balance += r.wealth_fee_rate * max(a.fen, 0)
            elif a.fen >= 0:
                balance += r.deposit_nim * a.fen
            else:
                balance += r.loan_spread * -a.fen
        assert c.today is not None and c.ledger_from is not None
        today = _month(c.today)
        known = [m for m in range(today - 12, today) if _month_start(m) >= c.ledger_from]
        income = sum(c.income.get(m, 0) for m in known)
        flows = Fraction(12 * income, len(known)) if known else Fraction(0)
        fen = round(balance + flows)
        return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"

    # -------------------------------------------------------------- alerts

    def _alert(
        self, c: _Customer, kind: str, severity: str, ts: int, doc: Mapping[str, Any]
    ) -> None:
        """Docs: "cooldown_days.<kind> suppresses repeats of the same kind for that many
        days (0 = every occurrence)", counted from the latest alert of the kind."""
        cooldown = self.r.alert_cooldown_days[kind] * DAY_MS
        earlier = c.alerts_at.get(kind)
        if cooldown and earlier and ts < max(earlier) + cooldown:
            return
        c.alerts_at.setdefault(kind, []).append(ts)
        self.out.alerts.append(AlertRef(c.cid, ts, kind, severity, doc["event_id"]))

    def _large_outflow(
        self,
        c: _Customer,
        doc: Mapping[str, Any],
        ts: int,
        amount: int,
        before: int,
        tier: str | None,
    ) -> None:
        """Docs: "one debit >= 50% of the AUM before it (only when that AUM is above 0),
        or, for hnw/private (the tier before the debit), >= 500,000 CNY"; "critical for
        hnw/private, else warning"."""
        r = self.r
        high = tier in ("hnw", "private")
        by_ratio = before > 0 and amount >= r.outflow_ratio * before
        by_amount = high and amount >= r.outflow_amount * 100
        if by_ratio or by_amount:
            self._alert(c, "large_outflow", "critical" if high else "warning", ts, doc)

    def _aum_drop(
        self, c: _Customer, doc: Mapping[str, Any], ts: int, aum: int, before: int, tier: str | None
    ) -> None:
        """Docs: "affluent and above (tier before the event): AUM <= (1 - 30%) x the
        highest AUM of the last 7 days (intraday highs count, and the level at the start
        of the period)"; "critical when the drop >= 50%"; checked when an event lowers
        the AUM; a peak of 0 is no drop."""
        r = self.r
        if tier is None or RANK[tier] < RANK["affluent"] or not aum < before:
            return
        assert c.today is not None
        start = c.today - r.drop_days + 1
        peak = None
        earlier = [d for d in c.levels if d < start]
        if earlier:
            peak = c.levels[max(earlier)][1]
        for d, (high, _) in c.levels.items():
            if d >= start:
                peak = high if peak is None else max(peak, high)
        if peak is None or peak <= 0 or not aum <= (1 - r.drop_ratio) * peak:
            return
        critical = aum <= (1 - r.drop_critical_ratio) * peak
        self._alert(c, "aum_drop", "critical" if critical else "warning", ts, doc)


# ------------------------------------------------------------------ API


def run(
    events: Iterable[tuple[str, Mapping[str, Any]] | Mapping[str, Any]],
    rules_path: str | Path | None = None,
    as_of: int | None = None,
    rules_version: str = "",
) -> ReferenceResult:
    """Apply input events -- ``(topic, doc)`` pairs or bare docs (the topic is then
    inferred from their fields) -- in the order given, as the core would apply them
    per customer; ``rules_path`` a user rules file as for the worker (None: defaults);
    ``as_of`` (epoch ms): then bring every customer's time up to it, as one final tick;
    ``rules_version`` the version the offers' ids derive from (responses name them)."""
    bank = _Bank(load(rules_path), rules_version)
    for item in events:
        if isinstance(item, tuple):
            topic, doc = item
        else:
            topic, doc = topic_of(item), item
        bank.event(topic, doc)
    if as_of is not None:
        for c in bank.customers.values():
            if c.mark is not None:
                bank.catch_up(c, as_of)
    for cid, c in bank.customers.items():
        if c.tier is not None:
            bank.out.tiers[cid] = c.tier
        if c.today is not None:
            bank.out.contributions[cid] = bank.contribution(c)
    return bank.out


def result_from_records(records: Iterable[tuple[str, Mapping[str, Any]]]) -> ReferenceResult:
    """The same shape from output-topic records ``(topic, record)`` (e.g. what a worker
    wrote to tier-changes, offers and alerts); kinds this module does not decide are
    left out, and ``tiers`` is each customer's last ``to_tier``."""
    out = ReferenceResult()
    for topic, rec in records:
        ts = parse_ts(rec["ts"])
        cid = rec["customer_id"]
        if topic.endswith("tier-changes"):
            out.tier_changes.setdefault(cid, []).append(
                TierChangeRef(
                    ts, rec["from_tier"], rec["to_tier"], rec["direction"], rec["cause_event_id"]
                )
            )
            out.tiers[cid] = rec["to_tier"]
        elif topic.endswith("offers") and rec["kind"] in OFFER_KINDS:
            out.offers.append(OfferRef(cid, ts, rec["kind"], rec["tier"], rec["cause_event_id"]))
        elif topic.endswith("alerts") and rec["kind"] in ALERT_KINDS:
            out.alerts.append(
                AlertRef(cid, ts, rec["kind"], rec["severity"], rec["cause_event_id"])
            )
    return out


def diff(expected: ReferenceResult, actual: ReferenceResult, limit: int = 20) -> list[str]:
    """Where ``actual`` differs from ``expected`` (tier-change sequences per customer;
    offers and alerts as multisets), at most ``limit`` lines; [] when they agree."""
    lines: list[str] = []
    for cid in sorted(set(expected.tier_changes) | set(actual.tier_changes)):
        want, got = expected.tier_changes.get(cid, []), actual.tier_changes.get(cid, [])
        if want != got:
            lines.append(f"tier changes of {cid}: expected {want}, got {got}")
    for name in ("offers", "alerts"):
        want_all, got_all = sorted(getattr(expected, name)), sorted(getattr(actual, name))
        missing = _minus(want_all, got_all)
        extra = _minus(got_all, want_all)
        lines += [f"{name}: missing {x}" for x in missing]
        lines += [f"{name}: unexpected {x}" for x in extra]
    return lines[:limit] + ([f"... {len(lines) - limit} more"] if len(lines) > limit else [])


def _minus(a: list[Any], b: list[Any]) -> list[Any]:
    rest = list(b)
    out = []
    for x in a:
        if x in rest:
            rest.remove(x)
        else:
            out.append(x)
    return out
