"""A deterministic synthetic bank: the input events ``tierstream simulate`` produces.

Why a simulator and not random noise: the service's behaviour only shows on data that
looks like a bank's — most customers small and a few holding most of the money (so the
tier mix and the AUM totals are realistic), salaries that arrive monthly and spending
that follows the day, channels that depend on age, customers who slowly move across a
tier line (so upgrades and downgrades happen), redeliveries and late events (so the
idempotence and ordering paths run) and, on request, a share of malformed records (so
the dead-letter path and its circuit breaker run), the months of a bank's life that time
triggers and value models feed on (sleepers, churners, cash users, uneven activity,
questionnaires of all ages; ``demo_config``) and the clock's ticks (time as data).

Rules this module keeps (it is pure, like ``state/``):

- No wall clock and no global randomness. Every draw comes from ``random.Random``
  instances seeded from ``SimConfig.seed``; event time comes from a simulated clock
  that advances per event. The same config gives byte-identical output.
- The good event stream does not depend on ``bad_share``/``duplicate_share``/
  ``late_share``: those faults are injected by a separate generator on the way out,
  so turning faults on never changes which good events exist.
- Money is ``Decimal`` with two places; balances are tracked exactly, and every
  transaction's ``balance_after`` is the tracked balance of its account after it.
- Output is the wire format of the foundation issue: JSON objects, ``ts`` as RFC 3339
  with the bank's +08:00 offset, amounts and balances as decimal strings.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final, NamedTuple

import orjson

from schemas.events import (
    TOPIC_ASSESSMENTS,
    TOPIC_BALANCES,
    TOPIC_OFFER_RESPONSES,
    TOPIC_PROFILES,
    TOPIC_TICKS,
    TOPIC_TIER_OVERRIDES,
    TOPIC_TRANSACTIONS,
)
from streams.tools.sim_answers import AcceptRates, AnswerModel, draw_answer

# --- public constants ---------------------------------------------------------------

#: The simulated bank's local time zone (no DST): timestamps carry this offset on the wire.
BANK_TZ: Final = timezone(timedelta(hours=8))
#: 2026-01-01T00:00:00+08:00 in epoch milliseconds.
DEFAULT_START_MS: Final = 1_767_196_800_000
SECOND_MS: Final = 1_000
MINUTE_MS: Final = 60 * SECOND_MS
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS

#: Conversion rates the simulator uses to size foreign-currency accounts. Tests use the
#: same table to recompute AUM; the core has its own rates (rules file), which may differ.
FX_TO_CNY: Final[Mapping[str, Decimal]] = {
    "CNY": Decimal("1"),
    "USD": Decimal("7.10"),
    "HKD": Decimal("0.91"),
    "EUR": Decimal("7.70"),
}
FOREIGN_CURRENCIES: Final = ("USD", "HKD", "EUR")

TIERS: Final = ("mass", "affluent", "hnw", "private")
#: Lower AUM bound (CNY) of affluent, hnw and private.
TIER_LINES_CNY: Final = (Decimal(500_000), Decimal(1_000_000), Decimal(6_000_000))
#: The tier mix the initial balances are drawn to (shares of customers).
DESIGN_TIER_MIX: Final[Mapping[str, float]] = {
    "mass": 0.70,
    "affluent": 0.20,
    "hnw": 0.08,
    "private": 0.02,
}

#: Labels of the malformed records injected when ``bad_share > 0``.
BAD_KINDS: Final = (
    "non_json",
    "invalid_utf8",
    "missing_field",
    "wrong_type",
    "unknown_enum",
    "negative_amount",
    "unknown_currency",
)
LABEL_OK: Final = "ok"
LABEL_DUPLICATE: Final = "duplicate"  # an exact redelivery of an earlier record
LABEL_LATE: Final = "late"  # a good record delivered after newer events
LABEL_TICK: Final = "tick"  # the simulated clock: "it is now ts" for one partition
LABEL_ANSWER: Final = "answer"  # a customer's answer to one of the worker's offers


def is_bad(label: str) -> bool:
    """True for labels of malformed records (the ones the service must dead-letter or reject)."""
    return label in BAD_KINDS


def tier_of(aum_cny: Decimal) -> str:
    """The tier an AUM falls in by the simulator's design lines (no hysteresis)."""
    rank = sum(1 for line in TIER_LINES_CNY if aum_cny >= line)
    return TIERS[rank]


def format_ts_bank_time(ts_ms: int) -> str:
    """Epoch ms as RFC 3339 in bank time, e.g. ``2026-01-01T08:00:00.000+08:00``."""
    return f"{_ts_second(ts_ms // 1000)}.{ts_ms % 1000:03d}+08:00"


@lru_cache(maxsize=4096)
def _ts_second(epoch_s: int) -> str:
    """The seconds part of ``format_ts_bank_time`` (cached: consecutive events share seconds)."""
    local = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch_s)).astimezone(BANK_TZ)
    return local.strftime("%Y-%m-%dT%H:%M:%S")


class SimRecord(NamedTuple):
    """One record to produce: topic (unprefixed contract name), key, value, event time.

    ``partition`` is set only for ticks, which are not keyed: each names its partition
    (the ticks contract) and must be written there. Everything else is placed by its key.
    """

    topic: str
    key: bytes | None
    value: bytes
    ts_ms: int
    partition: int | None = None


@dataclass(frozen=True)
class SimConfig:
    """What bank to simulate. Same config, same bytes."""

    customers: int = 5000
    seed: int = 42
    start_ms: int = DEFAULT_START_MS
    #: Share of output records that are malformed (each of BAD_KINDS equally likely).
    bad_share: float = 0.0
    #: Share of customers whose AUM drifts across a tier line over a few weeks.
    drift_share: float = 0.05
    #: Customer-initiated transactions per simulated day; None means 4 per customer.
    #: Scheduled events (salaries, interest, snapshots, ...) come on top.
    events_per_day: int | None = None
    #: Share of records redelivered later with the same bytes (same event_id).
    duplicate_share: float = 0.002
    #: Share of records delivered late, after newer events (out-of-order timestamps).
    late_share: float = 0.002
    #: Days between full balance snapshots of every account of a customer.
    snapshot_every_days: int = 7

    # Life over months (all off by default; the demo turns them on). Each customer's
    # part in them is drawn from a random stream of its own, so switching one on never
    # changes who the customers are or which customers another one picks.
    #: Share of customers already quiet at go-live: their last transaction came 20-85
    #: days before it and none follows (no salary, no loan repayment) -> dormancy.
    sleeper_share: float = 0.0
    #: Share of customers who stop transacting 5-40 days after go-live (they moved to
    #: another bank) -> their P(alive) falls: churn risk.
    churn_share: float = 0.0
    #: Share of customers who mostly use cash at ATMs and branches, whatever their age
    #: -> the digital-banking nudge for the young ones.
    cash_share: float = 0.0
    #: Sigma of a lognormal (mean 1) spreading how active customers are: 0 = all about
    #: equally active; 1 = some transact daily, others a few times a quarter (RFM).
    activity_spread: float = 0.0
    #: Onboarding risk assessments are dated up to this many days before go-live (the
    #: bank's questionnaires were filled in over time), so some expire while it runs;
    #: 0 = all at go-live.
    assessment_age_days: int = 0

    # Customer value (issue 22; all off by default, the demo turns them on). Each
    # customer's part is drawn from a random stream of its own ("value"), a fixed number
    # of draws per customer: switching them on changes no customer's draws elsewhere.
    #: Share of retail customers under 60 whose employer pays a high salary (30,000 to
    #: 60,000 CNY a month) into their current account: the salary criterion of the tiers.
    payroll_share: float = 0.0
    #: Share of customers without a loan who get a mortgage (0.5-3 million CNY, repaid
    #: monthly): loan spread in their contribution.
    mortgage_share: float = 0.0
    #: Share of customers charged a monthly account fee (SMS alerts, account
    #: management: 5-30 CNY) on the 25th: fee income.
    fee_share: float = 0.0
    #: Share of customers busy in the week before go-live (six card payments) and quiet
    #: from go-live on: frequent customers whose recency slips (RFM).
    slipper_share: float = 0.0
    #: Share of customers whose relationship manager overrides their tier (one tier up,
    #: private one down) 1-10 days into the run, for 8-20 days; a third are cleared
    #: after 2-6 days instead (topic tier-overrides).
    override_share: float = 0.0

    # The clock as data: ticks on the ticks topic, in event-time order with the events.
    #: Partitions of the ticks topic (= of the input topics); 0 = no ticks.
    tick_partitions: int = 0
    #: Simulated time between two ticks (one per partition each time).
    tick_every_ms: int = HOUR_MS

    # Answers to the worker's offers on offer-responses (streams/tools/sim_answers.py;
    # the offers are read back from the offers topic and fed to ``Simulator.answer``).
    #: P(accepted) per (offer kind, tier), "*" for any; empty = no answers (the default
    #: bank: its records do not change).
    accept_rates: AcceptRates = ()
    #: Of the offers not accepted, the share declined (the rest is ignored).
    decline_share: float = 0.5
    #: Accepted and declined answers come within this many days of the offer ...
    answer_within_days: float = 7.0
    #: ... and an unanswered offer is marked ignored this many days after it.
    ignored_after_days: float = 14.0

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        shares = ("bad_share", "drift_share", "duplicate_share", "late_share")
        value_shares = (
            "payroll_share",
            "mortgage_share",
            "fee_share",
            "slipper_share",
            "override_share",
        )
        for name in (*shares, "sleeper_share", "churn_share", "cash_share", *value_shares):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {share}")
        if self.bad_share + self.duplicate_share + self.late_share > 1.0:
            raise ValueError("bad_share + duplicate_share + late_share must be <= 1")
        if self.events_per_day is not None and self.events_per_day < 1:
            raise ValueError("events_per_day must be >= 1")
        if self.snapshot_every_days < 1:
            raise ValueError("snapshot_every_days must be >= 1")
        if self.sleeper_share + self.churn_share > 1.0:
            raise ValueError("sleeper_share + churn_share must be <= 1")
        if not 0.0 <= self.activity_spread <= 3.0:
            raise ValueError(f"activity_spread must be within [0, 3], got {self.activity_spread}")
        if self.assessment_age_days < 0:
            raise ValueError("assessment_age_days must be >= 0")
        if self.tick_partitions < 0:
            raise ValueError("tick_partitions must be >= 0")
        if self.tick_every_ms < SECOND_MS:
            raise ValueError("tick_every_ms must be >= 1000 (one simulated second)")
        self.answer_model()  # checks the answer options

    def answer_model(self) -> AnswerModel:
        """The offer-answer options as one (validated) object."""
        return AnswerModel(
            self.accept_rates,
            self.decline_share,
            self.answer_within_days,
            self.ignored_after_days,
        )

    @property
    def activity_per_day(self) -> int:
        return self.events_per_day if self.events_per_day is not None else 4 * self.customers


# --- the demo's bank ------------------------------------------------------------------

#: How the demo's customers answer offers: P(accepted) by offer kind and tier ("*" any;
#: the most specific entry wins). Higher tiers and personal offers convert better; a
#: birthday greeting is mostly ignored.
DEMO_ACCEPT_RATES: Final[AcceptRates] = (
    ("*", "mass", 0.05),
    ("*", "affluent", 0.12),
    ("*", "hnw", 0.18),
    ("*", "private", 0.25),
    ("wealth_products", "affluent", 0.22),
    ("relationship_manager", "hnw", 0.35),
    ("private_banking_invitation", "private", 0.45),
    ("sme_credit", "*", 0.30),
    ("digital_banking", "*", 0.15),
    ("birthday_greeting", "*", 0.04),
    ("reactivation", "*", 0.10),
    ("relationship_review", "*", 0.60),
    ("risk_assessment_due", "*", 0.40),
)

#: Customer transactions per customer and simulated day in the demo's bank (the default
#: bank has 4): months pass in a minute, and customers' RFM scores spread out.
DEMO_TX_PER_CUSTOMER_DAY: Final = 0.3


def demo_config(
    customers: int = 1000, *, seed: int = 42, bad_share: float = 0.01, tick_partitions: int = 0
) -> SimConfig:
    """The bank deploy/demo runs (``tierstream simulate --demo``).

    Sized so every kind of decision the rules make happens within about 35 simulated
    days, on data that earns it (docs/simulator.md, "The demo's bank"): sleepers whose
    last transaction was 20-85 days before go-live (dormancy), churners who stop 5-40
    days in (P(alive) falls: churn risk), young cash users (the digital-banking nudge),
    questionnaires filled in over the 13 months before go-live (expiry), birthdays,
    tier drifts, the clock's ticks every simulated hour when ``tick_partitions``, and
    answers to the worker's offers (``DEMO_ACCEPT_RATES``; ``tierstream simulate``
    reads the offers back); for customer value (issue 22): high salaries, mortgages,
    monthly fees, busy customers who go quiet (RFM slipping) and relationship
    managers' tier overrides.
    """
    return SimConfig(
        customers=customers,
        seed=seed,
        bad_share=bad_share,
        events_per_day=max(1, math.ceil(customers * DEMO_TX_PER_CUSTOMER_DAY)),
        sleeper_share=0.04,
        churn_share=0.05,
        cash_share=0.08,
        activity_spread=1.2,
        assessment_age_days=395,
        tick_partitions=tick_partitions,
        tick_every_ms=HOUR_MS,
        accept_rates=DEMO_ACCEPT_RATES,
        decline_share=0.4,
        payroll_share=0.04,
        mortgage_share=0.06,
        fee_share=0.3,
        slipper_share=0.04,
        override_share=0.03,
    )


# --- internals ------------------------------------------------------------------------

_CENT: Final = Decimal("0.01")
_ZERO: Final = Decimal("0.00")
_INVESTMENT_PRODUCTS: Final = ("wealth", "fund", "bond", "insurance")
#: (low, high, alpha) of the truncated Pareto each tier's AUM is drawn from, in CNY.
_AUM_PARETO: Final[Mapping[str, tuple[float, float, float]]] = {
    "mass": (200.0, 500_000.0, 0.3),
    "affluent": (500_000.0, 1_000_000.0, 1.6),
    "hnw": (1_000_000.0, 6_000_000.0, 1.5),
    "private": (6_000_000.0, 100_000_000.0, 1.7),
}
_INCOME_MEDIAN: Final[Mapping[str, float]] = {
    "mass": 6_500.0,
    "affluent": 15_000.0,
    "hnw": 32_000.0,
    "private": 70_000.0,
}
#: Relative event intensity by local hour: quiet nights, lunch and evening peaks.
_HOUR_WEIGHT: Final = (
    0.15, 0.10, 0.08, 0.08, 0.10, 0.20, 0.40, 0.80, 1.10, 1.30, 1.30, 1.30,
    1.40, 1.30, 1.20, 1.20, 1.20, 1.30, 1.60, 1.70, 1.60, 1.30, 0.90, 0.50,
)  # fmt: skip
_MEAN_HOUR_WEIGHT: Final = sum(_HOUR_WEIGHT) / 24

# heap item kinds
_SALARY, _LOAN, _INTEREST, _SNAPSHOT, _DRIFT, _ACCT_SNAPSHOT, _DRIFT_OUT = range(7)
_FEE, _OVERRIDE, _OVERRIDE_CLEAR = range(7, 10)
#: Why relationship managers override a tier in the demo (tier-overrides' reason).
_OVERRIDE_REASONS: Final = (
    "assets held at another branch",
    "family office, consolidation pending",
    "payroll moving to us next month",
    "known departure: assets leaving",
)
#: What stops when a customer goes quiet: the transactions that count as activity.
#: Interest (a bank posting, not activity) and snapshots go on.
_QUIET_SKIPS: Final = frozenset({_SALARY, _LOAN, _DRIFT, _DRIFT_OUT})

_ACTIVITIES: Final = (
    "card",
    "withdrawal",
    "transfer_out",
    "transfer_in",
    "invest_buy",
    "invest_sell",
    "fee",
    "large_outflow",
    "foreign",
    "profile",
    "reassess",
)


def _money(x: float) -> Decimal:
    """A positive float draw as an exact two-place Decimal (at least one cent)."""
    return max(Decimal(f"{x:.2f}"), _CENT)


def _local(ts_ms: int) -> datetime:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ts_ms)).astimezone(BANK_TZ)


def _to_ms(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _next_monthly(after_ms: int, day: int, hour: int, minute: int) -> int:
    """The first local ``day``-of-month at hh:mm strictly after ``after_ms`` (day clamped)."""
    local = _local(after_ms)
    year, month = local.year, local.month
    while True:
        last = _days_in_month(year, month)
        cand = datetime(year, month, min(day, last), hour, minute, tzinfo=BANK_TZ)
        ms = _to_ms(cand)
        if ms > after_ms:
            return ms
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _days_in_month(year: int, month: int) -> int:
    nxt = datetime(year + (month == 12), month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


def _trunc_pareto(rng: random.Random, low: float, high: float, alpha: float) -> float:
    """Inverse-CDF draw from a Pareto(alpha) truncated to [low, high)."""
    tail: float = (low / high) ** alpha
    denom: float = (1.0 - rng.random() * (1.0 - tail)) ** (1.0 / alpha)
    return low / denom


@dataclass(slots=True)
class _Account:
    account_id: str
    product: str
    currency: str
    balance: Decimal


@dataclass(slots=True)
class _Customer:
    idx: int
    customer_id: str
    key: bytes
    tier: str  # the designed initial tier
    segment: str
    age: int
    birth_date: str | None
    consent: bool
    risk_score: int
    experience_years: float
    digital: float  # 0..1 affinity to mobile/online over branch/atm
    income: float  # monthly, CNY
    salary_day: int
    accounts: list[_Account]
    weight: float = 1.0  # relative activity
    spend_scale: float = 100.0  # mean debit amount, CNY
    credit_scale: float = 0.0  # mean business receipt (SME), CNY
    drift: int = 0  # +1 growing, -1 shrinking, 0 none
    drift_target: Decimal = _ZERO
    drift_steps: int = 0
    loan_installment: Decimal = _ZERO
    #: From this event time on the customer makes no transaction (None: never quiet).
    quiet_from: int | None = None
    cash: bool = False  # pays cash: withdrawals at ATMs/branches rather than cards
    # customer value (SimConfig's "value" options)
    monthly_fee: Decimal = _ZERO  # charged on the 25th (0: none)
    slipper: bool = False  # busy the week before go-live, quiet from it
    #: days after onboarding of a tier override, its length, and when it is cleared
    #: instead of expiring (None: no override / not cleared)
    override_at: float | None = None
    override_days: float = 0.0
    override_clear: float | None = None

    def quiet_at(self, t: int) -> bool:
        return self.quiet_from is not None and t >= self.quiet_from

    @property
    def deposit(self) -> _Account:
        return self.accounts[0]

    @property
    def investments(self) -> list[_Account]:
        return [a for a in self.accounts if a.product in _INVESTMENT_PRODUCTS]

    @property
    def foreign(self) -> _Account | None:
        for a in self.accounts:
            if a.currency != "CNY":
                return a
        return None

    @property
    def loan(self) -> _Account | None:
        for a in self.accounts:
            if a.product == "loan":
                return a
        return None

    def aum_cny(self) -> Decimal:
        return sum(
            (a.balance * FX_TO_CNY[a.currency] for a in self.accounts if a.product != "loan"),
            _ZERO,
        )

    def risk_level(self) -> int:
        """1..5 as the core maps questionnaire scores (C1..C5), by quintile."""
        return min(5, self.risk_score // 20 + 1)


@dataclass(slots=True)
class _Event:
    """A good event before serialization: who it belongs to, where it goes, the fields."""

    topic: str
    customer: _Customer
    ts_ms: int
    fields: dict[str, Any] = field(default_factory=dict)


class Simulator:
    """The synthetic bank. Iterate ``records()`` (or ``labelled()``) for the event stream.

    The stream is infinite unless ``limit`` is given. ``stats`` counts the labels of
    what has been yielded so far (``ok``, ``duplicate``, ``late``, ``tick``, ``answer``
    and each bad kind). Ticks and answers are never duplicated, delayed or malformed.
    """

    def __init__(self, cfg: SimConfig | None = None) -> None:
        self.cfg = cfg or SimConfig()
        self.stats: Counter[str] = Counter()
        seed = self.cfg.seed
        # Separate streams: world (customers, events) vs faults (bad/dup/late), so
        # turning faults on never changes the good events.
        self._world = random.Random(f"tierstream-sim:{seed}:world")
        self._faults = random.Random(f"tierstream-sim:{seed}:faults")
        # Who sleeps, churns, pays cash, how active: a stream of its own (see SimConfig).
        self._life = random.Random(f"tierstream-sim:{seed}:life")
        # Salaries, mortgages, fees, slippers, overrides (issue 22): another one.
        self._value = random.Random(f"tierstream-sim:{seed}:value")
        self._n = 0  # good events generated
        self._n_bad = 0
        self._last_ts = self.cfg.start_ms  # event time of the latest good record
        self._heap: list[tuple[int, int, int, int, Any]] = []
        self._seq = 0
        self.onboarding_end_ms = self.cfg.start_ms + self._onboard_step_ms() * self.cfg.customers
        self._customers = [self._make_customer(i) for i in range(self.cfg.customers)]
        self._calibrate()
        self._cum_weights = list(_cumsum(c.weight for c in self._customers))
        # answers to the worker's offers, by due time (see answer())
        self._answer_model = self.cfg.answer_model() if self.cfg.accept_rates else None
        self._answers: list[tuple[int, int, SimRecord]] = []
        self._answers_made: set[str] = set()  # offers answered (each one once)

    # --- public API ---

    def records(self, limit: int | None = None) -> Iterator[SimRecord]:
        """The records to produce, in delivery order."""
        for _, rec in self.labelled(limit):
            yield rec

    def labelled(self, limit: int | None = None) -> Iterator[tuple[str, SimRecord]]:
        """``(label, record)`` pairs: the same stream as ``records()`` with what each one is.

        ``limit`` counts the bank's records and ticks; answers to offers (``answer``)
        come on top, each just before the first record later than it."""
        cfg = self.cfg
        faults = self._faults
        good = self._good_records()
        pending: list[tuple[int, int, str, SimRecord]] = []  # (release slot, seq, label, rec)
        slot = 0
        seq = 0
        while limit is None or slot < limit:
            if cfg.bad_share and faults.random() < cfg.bad_share:
                label, rec = self._bad_record()
            elif pending and pending[0][0] <= slot:
                _, _, label, rec = heapq.heappop(pending)
            else:
                rec = next(good)
                if self._answers and self._answers[0][0] <= rec.ts_ms:
                    # answers due by now go first; they take no slot and no fault draw,
                    # so the bank's own records stay exactly what they were
                    for answer in self._due_answers(rec.ts_ms):
                        self.stats[LABEL_ANSWER] += 1
                        yield LABEL_ANSWER, answer
                if rec.partition is not None:  # a tick: the clock, not bank data
                    self.stats[LABEL_TICK] += 1
                    slot += 1
                    yield LABEL_TICK, rec
                    continue
                r = faults.random()
                if r < cfg.late_share:
                    seq += 1
                    heapq.heappush(pending, (slot + faults.randint(20, 400), seq, LABEL_LATE, rec))
                    continue
                label = LABEL_OK
                if r < cfg.late_share + cfg.duplicate_share:
                    seq += 1
                    release = slot + faults.randint(1, 500)
                    heapq.heappush(pending, (release, seq, LABEL_DUPLICATE, rec))
            self.stats[label] += 1
            slot += 1
            yield label, rec

    def answer(self, offer: Mapping[str, Any]) -> bool:
        """Schedule the customer's answer to ``offer`` (a record of the ``offers``
        topic, as JSON) on ``offer-responses``: it goes out in event-time order with
        the bank's records, or before the next one if its time has passed. Returns whether
        an answer was scheduled (not without ``accept_rates``, nor for an offer none of
        them applies to, nor for a record that is not an offer)."""
        model = self._answer_model
        if model is None:
            return False
        try:
            offer_ts = _parse_ms(offer["ts"])
            drawn = draw_answer(model, self.cfg.seed, offer, offer_ts)
        except (KeyError, TypeError, ValueError):
            return False
        if drawn is None or drawn[1]["offer_event_id"] in self._answers_made:
            return False
        ts, drawn_fields = drawn
        fields = {  # the contract's order: event_id, customer_id, ts, the rest
            "event_id": drawn_fields.pop("event_id"),
            "customer_id": drawn_fields.pop("customer_id"),
            "ts": format_ts_bank_time(ts),
            **drawn_fields,
        }
        key = str(fields["customer_id"]).encode()
        rec = SimRecord(TOPIC_OFFER_RESPONSES, key, orjson.dumps(fields), ts)
        heapq.heappush(self._answers, (ts, len(self._answers_made), rec))
        self._answers_made.add(str(fields["offer_event_id"]))
        return True

    @property
    def answered(self) -> int:
        """Offers answered so far (answers scheduled; each goes out when its time comes)."""
        return len(self._answers_made)

    def _due_answers(self, until_ms: int) -> Iterator[SimRecord]:
        answers = self._answers
        while answers and answers[0][0] <= until_ms:
            yield heapq.heappop(answers)[2]

    # --- customers ---

    def _make_customer(self, i: int) -> _Customer:
        rng = self._world
        cfg = self.cfg
        tier = rng.choices(TIERS, weights=[DESIGN_TIER_MIX[t] for t in TIERS])[0]
        rank = TIERS.index(tier)
        sme = rng.random() < 0.10
        if sme:
            age = int(min(75, max(25, rng.gauss(46, 9))))
        else:
            age = int(min(88, max(18, rng.gauss(43, 15))))
        start = _local(cfg.start_ms)
        birth_date: str | None = None
        if rng.random() < 0.97:
            year = start.year - age
            month = rng.randint(1, 12)
            day = rng.randint(1, _days_in_month(year, month))
            birth_date = f"{year:04d}-{month:02d}-{day:02d}"
        risk = int(min(100, max(0, round(rng.gauss(70 - 0.55 * age + 5 * rank, 16)))))
        exp = max(0.0, min(float(age - 18), rng.gauss(2 + 3 * rank + 0.12 * (age - 30), 4)))
        digital = min(0.98, max(0.02, rng.gauss(1.15 - 0.013 * age, 0.12)))
        income = _INCOME_MEDIAN[tier] * math.exp(rng.gauss(0, 0.45))
        if sme:
            income *= 4
        elif age >= 60:
            income *= 0.6  # pension
        cid = f"C{i:07d}"
        low, high, alpha = _AUM_PARETO[tier]
        aum = _trunc_pareto(rng, low, high, alpha)
        cust = _Customer(
            idx=i,
            customer_id=cid,
            key=cid.encode(),
            tier=tier,
            segment="sme" if sme else "retail",
            age=age,
            birth_date=birth_date,
            consent=rng.random() < 0.70,
            risk_score=risk,
            experience_years=round(exp, 1),
            digital=digital,
            income=income,
            salary_day=rng.choice((5, 10, 15, 20, 25, 28)),
            accounts=self._make_accounts(cid, tier, sme, aum, income),
        )
        cust.weight = (2.5 if sme else 1.3 - 0.01 * max(0, age - 30)) * (1 + 0.15 * rank)
        loan = cust.loan
        if loan is not None:
            months = rng.randint(60, 300)
            cust.loan_installment = _money(float(loan.balance) / months * 1.3)
        if rng.random() < cfg.drift_share:
            self._plan_drift(cust, aum)
        self._plan_life(cust)
        self._plan_value(cust)
        return cust

    def _plan_value(self, c: _Customer) -> None:
        """The customer's part in SimConfig's "value" options: the same number of draws
        from the value stream for every customer, whatever the options."""
        cfg = self.cfg
        v = self._value
        payroll, salary = v.random(), v.uniform(30_000, 60_000)
        mortgage, principal, months = v.random(), v.uniform(500_000, 3_000_000), v.randint(120, 360)
        fee, fee_amount = v.random(), v.choice(("5.00", "10.00", "20.00", "30.00"))
        slipper = v.random()
        override, at, length, clear, clear_at = (v.random() for _ in range(5))
        if payroll < cfg.payroll_share and c.segment == "retail" and c.age < 60:
            c.income = salary
        if mortgage < cfg.mortgage_share and c.loan is None:
            c.accounts.append(_Account(f"{c.customer_id}-M1", "loan", "CNY", _money(principal)))
            c.loan_installment = _money(principal / months * 1.3)
        if fee < cfg.fee_share:
            c.monthly_fee = Decimal(fee_amount)
        if slipper < cfg.slipper_share:
            c.slipper = True
            c.quiet_from = cfg.start_ms
            c.drift = 0
        if override < cfg.override_share:
            c.override_at = 1 + 9 * at
            c.override_days = 8 + 12 * length
            if clear < 1 / 3:
                c.override_clear = 2 + 4 * clear_at

    def _plan_life(self, c: _Customer) -> None:
        """The customer's part in the months to come (SimConfig's "life" options).

        Always the same number of draws per customer, so each option only changes its
        own customers. Quiet customers never drift (a drift is made of transfers).
        """
        cfg = self.cfg
        life = self._life
        quiet, when, cash, activity = life.random(), life.random(), life.random(), life.gauss(0, 1)
        if quiet < cfg.sleeper_share:
            c.quiet_from = cfg.start_ms
        elif quiet < cfg.sleeper_share + cfg.churn_share:
            c.quiet_from = self.onboarding_end_ms + int((5 + 35 * when) * DAY_MS)
        if c.quiet_from is not None:
            c.drift = 0
        if cash < cfg.cash_share:
            c.cash = True
            c.digital = min(c.digital, 0.1)
        sigma = cfg.activity_spread
        if sigma:
            c.weight *= math.exp(sigma * activity - sigma * sigma / 2)

    def _make_accounts(
        self, cid: str, tier: str, sme: bool, aum: float, income: float
    ) -> list[_Account]:
        rng = self._world
        n = {
            "mass": rng.choice((1, 1, 1, 2, 2)),
            "affluent": rng.choice((2, 3)),
            "hnw": rng.choice((3, 4)),
            "private": 4,
        }[tier]
        wants_loan = rng.random() < (0.35 if sme else 0.10)
        if wants_loan and n == 1:
            n = 2
        fx_p = {"mass": 0.03, "affluent": 0.10, "hnw": 0.25, "private": 0.40}[tier]
        wants_fx = rng.random() < fx_p and n - wants_loan >= 2
        kinds: list[tuple[str, str]] = [("deposit", "CNY")]
        if wants_loan:
            kinds.append(("loan", "CNY"))
        if wants_fx:
            kinds.append(("deposit", rng.choice(FOREIGN_CURRENCIES)))
        products = rng.sample(_INVESTMENT_PRODUCTS, k=n - len(kinds))
        kinds.extend((p, "CNY") for p in products)
        # How the AUM splits: mass customers keep most in the current account.
        shares: list[float] = []
        for product, currency in kinds:
            if product == "loan":
                shares.append(0.0)
            elif currency != "CNY":
                shares.append(rng.uniform(0.05, 0.25))
            elif product == "deposit":
                shares.append(rng.uniform(0.5, 0.9) if tier == "mass" else rng.uniform(0.15, 0.45))
            else:
                shares.append(rng.uniform(0.2, 1.0))
        total = sum(shares)
        accounts = []
        for k, ((product, currency), share) in enumerate(zip(kinds, shares, strict=True)):
            if product == "loan":
                principal = income * rng.uniform(20, 120)
                balance = _money(principal)
            else:
                balance = _money(aum * share / total / float(FX_TO_CNY[currency]))
            accounts.append(_Account(f"{cid}-A{k + 1}", product, currency, balance))
        return accounts

    def _plan_drift(self, cust: _Customer, aum: float) -> None:
        rng = self._world
        rank = TIERS.index(cust.tier)
        if rank == 0:
            direction = 1
        elif rank == len(TIERS) - 1:
            direction = -1
        else:
            direction = rng.choice((1, -1))
        if direction > 0:
            target = float(TIER_LINES_CNY[rank]) * rng.uniform(1.15, 1.8)
        else:
            target = float(TIER_LINES_CNY[rank - 1]) * rng.uniform(0.4, 0.85)
        cust.drift = direction
        cust.drift_target = _money(target)
        cust.drift_steps = rng.randint(4, 8)

    def _calibrate(self) -> None:
        """Size spending so that a customer's money roughly balances month to month.

        Without this a customer's balance would random-walk across tier lines and every
        customer would "drift"; only the planned drifters should.
        """
        total_w = sum(c.weight for c in self._customers)
        per_day = self.cfg.activity_per_day
        for c in self._customers:
            ticks_per_month = max(per_day * c.weight / total_w * 30.0, 0.5)
            if c.segment == "sme":
                c.credit_scale = min(c.income / (ticks_per_month * 0.40), c.income)
                c.spend_scale = min(0.95 * c.income / (ticks_per_month * 0.45), c.income * 0.5)
            else:
                c.spend_scale = min(0.92 * c.income / (ticks_per_month * 0.85), c.income * 0.5)
            c.spend_scale = max(c.spend_scale, 5.0)

    def _onboard_step_ms(self) -> int:
        return max(1, min(100, (DAY_MS // 2) // self.cfg.customers))

    # --- scheduling ---

    def _schedule(self, ts_ms: int, kind: int, cust: _Customer, arg: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (ts_ms, self._seq, kind, cust.idx, arg))

    def _schedule_initial(self, c: _Customer) -> None:
        rng = self._world
        after = self.onboarding_end_ms
        jitter = (c.idx * 7919) % HOUR_MS
        if c.segment == "retail":
            self._schedule(_next_monthly(after, c.salary_day, 6, 0) + jitter, _SALARY, c)
        if c.loan is not None:
            self._schedule(_next_monthly(after, 1 + c.idx % 28, 9, 0) + jitter, _LOAN, c)
        self._schedule(_next_monthly(after, 21, 2, 0) + jitter, _INTEREST, c)
        days = 1 + c.idx % self.cfg.snapshot_every_days
        first_snap = _to_ms(_local(after).replace(hour=1, minute=0, second=0, microsecond=0))
        self._schedule(first_snap + days * DAY_MS + jitter, _SNAPSHOT, c)
        if c.drift:
            self._schedule(after + int(rng.uniform(3, 25) * DAY_MS), _DRIFT, c)
        if c.monthly_fee:
            self._schedule(_next_monthly(after, 25, 3, 0) + jitter, _FEE, c)
        if c.override_at is not None:
            self._schedule(after + int(c.override_at * DAY_MS), _OVERRIDE, c)

    # --- the good stream ---

    def _good_records(self) -> Iterator[SimRecord]:
        """Good records in delivery order, with the clock's ticks among them.

        A tick at T goes out once the stream is about to pass T: after every event at or
        before T (the core's ticks contract: ``it is now T`` for one partition), before
        the first event after it. Back-dated onboarding records never pass a tick.
        """
        seed = self.cfg.seed
        tick_every = self.cfg.tick_every_ms
        next_tick = self.cfg.start_ms + tick_every if self.cfg.tick_partitions else None
        for ev in self._good_events():
            while next_tick is not None and ev.ts_ms > next_tick:
                yield from self._ticks(next_tick)
                next_tick += tick_every
            self._n += 1
            # The contract's field order: event_id, customer_id, [account_id], ts, the rest.
            fields: dict[str, Any] = {
                "event_id": f"sim-{seed}-{self._n}",
                "customer_id": ev.customer.customer_id,
            }
            if "account_id" in ev.fields:
                fields["account_id"] = ev.fields["account_id"]
            fields["ts"] = format_ts_bank_time(ev.ts_ms)
            fields.update(ev.fields)
            self._last_ts = max(self._last_ts, ev.ts_ms)
            yield SimRecord(ev.topic, ev.customer.key, orjson.dumps(fields), ev.ts_ms)

    def _ticks(self, ts_ms: int) -> Iterator[SimRecord]:
        """One tick per partition at ``ts_ms`` (schemas/json/ticks.schema.json)."""
        when = format_ts_bank_time(ts_ms)
        for p in range(self.cfg.tick_partitions):
            value = orjson.dumps({"event_id": f"tick-{p}-{ts_ms}", "partition": p, "ts": when})
            yield SimRecord(TOPIC_TICKS, None, value, ts_ms, p)

    def _good_events(self) -> Iterator[_Event]:
        step = self._onboard_step_ms()
        for c in self._customers:
            t = self.cfg.start_ms + c.idx * step
            yield self._profile_event(c, t)
            yield self._assessment_event(c, self._assessed_at(t + 1))
            sleeper = c.quiet_from is not None and c.quiet_from <= self.cfg.start_ms
            if sleeper or self.cfg.assessment_age_days:
                yield self._last_transaction(c, sleeper)
            if c.slipper:
                yield from self._busy_week(c)
            for k, acct in enumerate(c.accounts):
                yield self._balance_event(c, acct, t + 2 + k)
            self._schedule_initial(c)
        clock = float(self.onboarding_end_ms)
        rng = self._world
        day_ms = float(DAY_MS)
        per_day = float(self.cfg.activity_per_day)
        while True:
            hour = int((clock + 8 * HOUR_MS) // HOUR_MS) % 24
            mean_step = day_ms / per_day * _MEAN_HOUR_WEIGHT / _HOUR_WEIGHT[hour]
            nxt = clock + mean_step * rng.expovariate(1.0)
            heap = self._heap
            while heap and heap[0][0] <= nxt:
                t, _, kind, idx, arg = heapq.heappop(heap)
                yield from self._scheduled(t, kind, self._customers[idx], arg)
            clock = nxt
            idx = _pick(rng, self._cum_weights)
            c = self._customers[idx]
            if c.quiet_at(int(clock)):
                continue  # a quiet customer makes no transaction: the moment passes
            yield from self._activity(c, int(clock))

    def _assessed_at(self, onboarded: int) -> int:
        """When an onboarding questionnaire was filled in (SimConfig.assessment_age_days)."""
        days = self.cfg.assessment_age_days
        if not days:
            return onboarded
        return onboarded - int(self._life.random() * days * DAY_MS)

    def _last_transaction(self, c: _Customer, sleeper: bool) -> _Event:
        """The customer's last transaction before go-live, in the onboarding load.

        A sleeper's came 20-85 days before (the window keeps it: it is not late) and is
        the last one: due for dormancy weeks into the run. Everybody else's came 1-7
        days before; they get one whenever questionnaires are back-dated, because the
        core counts dormancy from the first day it saw a customer who never transacted,
        and a questionnaire from last autumn would otherwise make an active customer
        look silent since then. It leaves the balance the customer opens with.
        """
        life = self._life
        days = life.uniform(20, 85) if sleeper else life.uniform(1, 7)
        t = self.cfg.start_ms - int(days * DAY_MS)
        dep = c.deposit
        amount = _money(max(float(dep.balance) * life.uniform(0.01, 0.1), 10.0))
        dep.balance += amount  # what the account held before it
        if sleeper:
            return self._txn(c, dep, t, "transfer_out", amount, self._remote(c), credit=False)
        return self._txn(c, dep, t, "card_payment", amount, "pos", credit=False)

    def _busy_week(self, c: _Customer) -> Iterator[_Event]:
        """A slipper's six card payments in the week before go-live (onboarding load),
        leaving the balance the customer opens with."""
        v = self._value
        dep = c.deposit
        start = self.cfg.start_ms
        items = sorted(
            (start - int(v.uniform(1, 7) * DAY_MS), _money(c.spend_scale * v.uniform(0.3, 1.5)))
            for _ in range(6)
        )
        dep.balance += sum((amount for _, amount in items), _ZERO)
        for t, amount in items:
            yield self._txn(c, dep, t, "card_payment", amount, "pos", credit=False)

    def _override_event(self, c: _Customer, t: int, clear: bool) -> _Event:
        """A relationship manager's tier-overrides record: one tier up from the tier the
        customer's assets are in (private: one down), or, to clear it, tier null."""
        fields: dict[str, Any] = {"tier": None}
        if not clear:
            rank = TIERS.index(tier_of(c.aum_cny()))
            fields["tier"] = TIERS[rank + 1] if rank + 1 < len(TIERS) else TIERS[rank - 1]
            fields["until"] = format_ts_bank_time(t + int(c.override_days * DAY_MS))
        fields["set_by"] = f"rm-{c.idx % 40:03d}"
        fields["reason"] = _OVERRIDE_REASONS[c.idx % len(_OVERRIDE_REASONS)]
        if clear:
            fields["reason"] = "reviewed: the data is right"
        return _Event(TOPIC_TIER_OVERRIDES, c, t, fields)

    def _scheduled(self, t: int, kind: int, c: _Customer, arg: Any) -> Iterator[_Event]:
        rng = self._world
        if c.quiet_at(t) and kind in _QUIET_SKIPS:
            return  # gone quiet: no salary, repayment or drift any more (not rescheduled)
        if kind == _FEE:
            if c.deposit.balance >= c.monthly_fee:
                yield self._txn(c, c.deposit, t, "fee", c.monthly_fee, "online", credit=False)
            self._schedule(_next_monthly(t, 25, 3, 0), _FEE, c)
            return
        if kind == _OVERRIDE:
            yield self._override_event(c, t, clear=False)
            if c.override_clear is not None:
                self._schedule(t + int(c.override_clear * DAY_MS), _OVERRIDE_CLEAR, c)
            return
        if kind == _OVERRIDE_CLEAR:
            yield self._override_event(c, t, clear=True)
            return
        if kind == _SALARY:
            amount = _money(c.income * rng.uniform(0.97, 1.03))
            if _local(t).month == 1:
                amount = _money(float(amount) * 2)  # year-end bonus
            typ = "deposit" if c.age < 60 else "transfer_in"
            yield self._txn(c, c.deposit, t, typ, amount, "online", credit=True)
            self._schedule(_next_monthly(t, c.salary_day, 6, 0), _SALARY, c)
        elif kind == _LOAN:
            loan = c.loan
            assert loan is not None
            amount = min(c.loan_installment, loan.balance, c.deposit.balance)
            if amount >= _CENT:
                loan.balance -= amount
                yield self._txn(c, c.deposit, t, "loan_repayment", amount, "online", credit=False)
            if loan.balance > _ZERO:
                self._schedule(_next_monthly(t, 1 + c.idx % 28, 9, 0), _LOAN, c)
        elif kind == _INTEREST:
            interest = (c.deposit.balance * Decimal("0.0025") / 12).quantize(_CENT)
            if interest >= _CENT:
                yield self._txn(c, c.deposit, t, "interest", interest, "online", credit=True)
            self._schedule(_next_monthly(t, 21, 2, 0), _INTEREST, c)
        elif kind == _SNAPSHOT:
            for acct in c.accounts:
                if acct.product in _INVESTMENT_PRODUCTS:
                    move = Decimal(f"{rng.gauss(0.0008, 0.008):.6f}")
                    acct.balance = max(_ZERO, (acct.balance * (1 + move)).quantize(_CENT))
                yield self._balance_event(c, acct, t)
            self._schedule(t + self.cfg.snapshot_every_days * DAY_MS, _SNAPSHOT, c)
        elif kind == _ACCT_SNAPSHOT:
            yield self._balance_event(c, c.accounts[arg], t)
        elif kind == _DRIFT:
            yield from self._drift_step(c, t)
        elif kind == _DRIFT_OUT:
            amount = min(Decimal(arg), c.deposit.balance)
            if amount >= _CENT:
                yield self._txn(c, c.deposit, t, "transfer_out", amount, self._remote(c), False)

    def _drift_step(self, c: _Customer, t: int) -> Iterator[_Event]:
        rng = self._world
        gap = c.drift_target - c.aum_cny()
        step = (gap / c.drift_steps).quantize(_CENT)
        c.drift_steps -= 1
        if c.drift > 0 and step >= _CENT:
            yield self._txn(c, c.deposit, t, "transfer_in", step, self._remote(c), credit=True)
        elif c.drift < 0 and -step >= _CENT:
            need = -step
            if c.deposit.balance >= need:
                yield self._txn(c, c.deposit, t, "transfer_out", need, self._remote(c), False)
            else:
                invs = c.investments
                if invs:
                    src = max(invs, key=lambda a: a.balance)
                    amount = min(src.balance, need - c.deposit.balance + _money(100))
                    if amount >= _CENT:
                        src.balance -= amount
                        yield self._txn(
                            c, c.deposit, t, "investment_sell", amount, self._remote(c), True
                        )
                        self._schedule(t + 5 * MINUTE_MS, _ACCT_SNAPSHOT, c, c.accounts.index(src))
                self._schedule(t + 30 * MINUTE_MS, _DRIFT_OUT, c, str(need))
        if c.drift_steps > 0:
            self._schedule(t + int(rng.uniform(2, 6) * DAY_MS), _DRIFT, c)

    def _activity(self, c: _Customer, t: int) -> Iterator[_Event]:
        rng = self._world
        local_ms = t + 8 * HOUR_MS
        hour = (local_ms // HOUR_MS) % 24
        weekend = ((local_ms // DAY_MS) + 3) % 7 >= 5  # 1970-01-01 was a Thursday
        evening = 18 <= hour <= 22
        business = not weekend and 9 <= hour < 17
        night = hour < 6
        sme = c.segment == "sme"
        rank = TIERS.index(c.tier)
        has_inv = bool(c.investments)
        inv_w = (0.5, 2.0, 3.0, 4.0)[rank] * (1.0 if business else 0.25) if has_inv else 0.0
        weights = (
            (15.0 if sme else 60.0)
            * (0.6 if c.age >= 60 else 1.0)  # older customers pay cash more often
            * (0.15 if c.cash else 1.0)
            * (1.5 if evening else 1.0)
            * (1.3 if weekend else 1.0)
            * (0.4 if night else 1.0),  # card
            (5.0 if sme else 8.0)
            * (2.5 if c.age >= 60 else 1.0)
            * (3.0 if c.cash else 1.0),  # withdrawal
            (25.0 if sme else 12.0) * (1.5 if business else 1.0),  # transfer_out
            (35.0 if sme else 4.0) * (1.5 if business else 1.0),  # transfer_in
            inv_w,  # invest_buy
            inv_w * 0.6,  # invest_sell
            3.0 if sme else 1.0,  # fee
            0.02,  # large_outflow (a house, a car: rare, and the money does not come back)
            4.0 if c.foreign is not None else 0.0,  # foreign
            0.03,  # profile update
            0.03,  # reassessment
        )
        act = rng.choices(_ACTIVITIES, weights=weights)[0]
        dep = c.deposit
        if act == "profile":
            c.consent = not c.consent if rng.random() < 0.5 else c.consent
            yield self._profile_event(c, t)
            return
        if act == "reassess":
            c.risk_score = int(min(100, max(0, c.risk_score + round(rng.gauss(0, 8)))))
            c.experience_years = round(c.experience_years + rng.uniform(0, 1.5), 1)
            yield self._assessment_event(c, t)
            return
        if act == "invest_buy" and dep.balance >= 1000:
            target = rng.choice(c.investments)
            amount = _money(float(dep.balance) * rng.uniform(0.1, 0.5))
            target.balance += amount
            level = c.risk_level()
            if rng.random() < 0.08:
                risk = min(5, level + rng.choice((1, 2)))  # an unsuitable sale
            else:
                risk = rng.randint(1, level)
            yield self._txn(
                c, dep, t, "investment_buy", amount, self._remote(c), False, product_risk=risk
            )
            snap_at = t + rng.randint(1, 10) * MINUTE_MS
            self._schedule(snap_at, _ACCT_SNAPSHOT, c, c.accounts.index(target))
            return
        if act == "invest_sell":
            holdings = [a for a in c.investments if a.balance >= 1000]
            if holdings:
                src = rng.choice(holdings)
                amount = _money(float(src.balance) * rng.uniform(0.1, 0.5))
                src.balance -= amount
                yield self._txn(c, dep, t, "investment_sell", amount, self._remote(c), True)
                snap_at = t + rng.randint(1, 10) * MINUTE_MS
                self._schedule(snap_at, _ACCT_SNAPSHOT, c, c.accounts.index(src))
                return
        if act == "foreign":
            fx = c.foreign
            assert fx is not None
            rate = float(FX_TO_CNY[fx.currency])
            if rng.random() < 0.6 and fx.balance >= 10:
                amount = min(_money(c.spend_scale / rate * _lognormal(rng, 0.9)), fx.balance)
                chan = "pos" if rng.random() < 0.6 else "online"
                yield self._txn(c, fx, t, "card_payment", amount, chan, credit=False)
            else:
                amount = _money(c.income * 0.3 / rate * _lognormal(rng, 0.7))
                yield self._txn(c, fx, t, "transfer_in", amount, self._remote(c), credit=True)
            return
        if act == "large_outflow" and dep.balance >= 50_000:
            amount = _money(float(dep.balance) * rng.uniform(0.4, 0.9))
            yield self._txn(c, dep, t, "transfer_out", amount, self._remote(c), credit=False)
            return
        if act == "transfer_in" or (act in ("invest_buy", "invest_sell", "large_outflow")):
            if sme:
                amount = _money(c.credit_scale * _lognormal(rng, 0.8))
            else:
                amount = _money(c.income * 0.1 * _lognormal(rng, 0.8))
            yield self._txn(c, dep, t, "transfer_in", amount, self._remote(c), credit=True)
            return
        # debits from the current account
        if act == "card":
            typ, mult = "card_payment", 0.5
            in_store = rng.random() < 0.75 - 0.35 * c.digital + (0.1 if evening else 0.0)
            chan = "pos" if in_store else ("mobile" if rng.random() < 0.6 else "online")
        elif act == "withdrawal":
            typ, mult = "withdrawal", 2.0
            chan = "atm" if rng.random() < 0.5 + 0.4 * c.digital else "branch"
        elif act == "fee":
            typ, mult = "fee", 0.0
            chan = "online"
        else:
            typ, mult = "transfer_out", 2.5
            chan = self._remote(c)
        if typ == "fee":
            amount = Decimal(rng.choice(("2.00", "5.00", "10.00", "25.00")))
        else:
            amount = _money(c.spend_scale * mult * _lognormal(rng, 0.8))
            if typ == "withdrawal":
                amount = max(Decimal(100), (amount / 100).quantize(Decimal(1)) * 100)
        if amount > dep.balance:
            if dep.balance < 1:
                # Nothing to spend: money comes in instead (a transfer from family, a refund).
                amount = _money(max(c.income * 0.2, 100.0) * _lognormal(rng, 0.5))
                yield self._txn(c, dep, t, "transfer_in", amount, self._remote(c), credit=True)
                return
            amount = _money(float(dep.balance) * rng.uniform(0.3, 0.9))
        yield self._txn(c, dep, t, typ, amount, chan, credit=False)

    def _remote(self, c: _Customer) -> str:
        """A channel for a customer-initiated transfer or trade, by the customer's habits."""
        r = self._world.random()
        if r < c.digital:
            return "mobile" if r < c.digital * 0.65 else "online"
        return "branch" if r < c.digital + (1 - c.digital) * 0.85 else "call_center"

    # --- event builders ---

    def _txn(
        self,
        c: _Customer,
        acct: _Account,
        t: int,
        typ: str,
        amount: Decimal,
        channel: str,
        credit: bool,
        product_risk: int | None = None,
    ) -> _Event:
        acct.balance = acct.balance + amount if credit else acct.balance - amount
        fields: dict[str, Any] = {
            "account_id": acct.account_id,
            "type": typ,
            "amount": str(amount),
            "currency": acct.currency,
            "channel": channel,
            "balance_after": str(acct.balance),
        }
        if product_risk is not None:
            fields["product_risk"] = f"R{product_risk}"
        return _Event(TOPIC_TRANSACTIONS, c, t, fields)

    def _balance_event(self, c: _Customer, acct: _Account, t: int) -> _Event:
        fields = {
            "account_id": acct.account_id,
            "product": acct.product,
            "balance": str(acct.balance),
            "currency": acct.currency,
        }
        return _Event(TOPIC_BALANCES, c, t, fields)

    def _profile_event(self, c: _Customer, t: int) -> _Event:
        fields: dict[str, Any] = {"segment": c.segment, "marketing_consent": c.consent}
        if c.birth_date is not None:
            fields["birth_date"] = c.birth_date
        return _Event(TOPIC_PROFILES, c, t, fields)

    def _assessment_event(self, c: _Customer, t: int) -> _Event:
        fields = {"score": c.risk_score, "investment_experience_years": c.experience_years}
        return _Event(TOPIC_ASSESSMENTS, c, t, fields)

    # --- malformed records ---

    def _bad_record(self) -> tuple[str, SimRecord]:
        """A malformed record for a random customer. Touches no simulated state."""
        rng = self._faults
        kind = rng.choice(BAD_KINDS)
        c = self._customers[rng.randrange(len(self._customers))]
        self._n_bad += 1
        if kind in ("negative_amount", "unknown_currency"):
            topic = rng.choice((TOPIC_TRANSACTIONS, TOPIC_TRANSACTIONS, TOPIC_BALANCES))
        elif kind == "unknown_enum":  # risk-assessments has no enum field
            topic = rng.choices((TOPIC_TRANSACTIONS, TOPIC_BALANCES, TOPIC_PROFILES), (75, 20, 5))[
                0
            ]
        else:
            topic = rng.choices(
                (TOPIC_TRANSACTIONS, TOPIC_BALANCES, TOPIC_PROFILES, TOPIC_ASSESSMENTS),
                weights=(70, 20, 5, 5),
            )[0]
        ts = self._last_ts
        acct = c.accounts[rng.randrange(len(c.accounts))]
        ev: dict[str, Any] = {
            "event_id": f"sim-{self.cfg.seed}-bad-{self._n_bad}",
            "customer_id": c.customer_id,
        }
        if topic == TOPIC_TRANSACTIONS:
            ev |= {
                "account_id": acct.account_id,
                "ts": format_ts_bank_time(ts),
                "type": "card_payment",
                "amount": str(_money(rng.uniform(5, 500))),
                "currency": acct.currency,
                "channel": "pos",
            }
            money, enum_field, enum_value = "amount", rng.choice(("type", "channel")), "teleport"
        elif topic == TOPIC_BALANCES:
            ev |= {
                "account_id": acct.account_id,
                "ts": format_ts_bank_time(ts),
                "product": acct.product,
                "balance": str(_money(rng.uniform(100, 100_000))),
                "currency": acct.currency,
            }
            money, enum_field, enum_value = "balance", "product", "crypto"
        elif topic == TOPIC_PROFILES:
            ev |= {
                "ts": format_ts_bank_time(ts),
                "segment": c.segment,
                "marketing_consent": c.consent,
            }
            money, enum_field, enum_value = "", "segment", "vip"
        else:
            ev |= {
                "ts": format_ts_bank_time(ts),
                "score": c.risk_score,
                "investment_experience_years": 1.0,
            }
            money, enum_field, enum_value = "", "", ""
        value: bytes
        if kind == "non_json":
            whole = orjson.dumps(ev)
            value = whole[: rng.randint(1, len(whole) - 1)]
        elif kind == "invalid_utf8":
            value = orjson.dumps(ev).replace(c.key, c.key + b"\xff\xfe", 1)
        elif kind == "missing_field":
            del ev[rng.choice([k for k in ev if k != "event_id"])]
            value = orjson.dumps(ev)
        elif kind == "wrong_type":
            typed = {
                TOPIC_TRANSACTIONS: ("amount", {"value": "12.00"}),
                TOPIC_BALANCES: ("balance", [1, 2]),
                TOPIC_PROFILES: ("marketing_consent", "yes"),
                TOPIC_ASSESSMENTS: ("score", "high"),
            }[topic]
            ev[typed[0]] = typed[1]
            value = orjson.dumps(ev)
        elif kind == "unknown_enum":
            ev[enum_field] = enum_value
            value = orjson.dumps(ev)
        elif kind == "negative_amount":
            ev[money] = "-" + str(ev[money])
            value = orjson.dumps(ev)
        else:  # unknown_currency
            ev["currency"] = "XXX"
            value = orjson.dumps(ev)
        return kind, SimRecord(topic, c.key, value, ts)


def _parse_ms(text: object) -> int:
    """Epoch ms of an output record's RFC 3339 ``ts`` (ValueError if it is not one)."""
    if not isinstance(text, str):
        raise ValueError(f"not a time: {text!r}")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"naive time: {text!r}")
    return _to_ms(dt)


def _lognormal(rng: random.Random, sigma: float) -> float:
    """A lognormal multiplier with mean 1."""
    return math.exp(rng.gauss(-sigma * sigma / 2, sigma))


def _cumsum(xs: Iterator[float]) -> Iterator[float]:
    total = 0.0
    for x in xs:
        total += x
        yield total


def _pick(rng: random.Random, cum_weights: list[float]) -> int:
    """Index drawn with probability proportional to weight (binary search on cumsum)."""
    x = rng.random() * cum_weights[-1]
    return min(bisect_right(cum_weights, x), len(cum_weights) - 1)
