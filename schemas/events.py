"""Typed input events: what the decoder returns and what the core consumes.

Times are event times in integer epoch milliseconds (UTC); the RFC 3339 string on
the wire is parsed once by the decoder. Money is ``Decimal`` end to end — never a
float — so sums are exact. Enumerations are plain strings checked by the decoder
against the constants below (one place lists every allowed value).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

# --- enumerations (the JSON Schemas in schemas/json/ list the same values) ---

TRANSACTION_TYPES: Final = (
    "deposit",
    "withdrawal",
    "transfer_in",
    "transfer_out",
    "card_payment",
    "investment_buy",
    "investment_sell",
    "loan_repayment",
    "fee",
    "interest",
)
#: Money leaving the customer's accounts at this bank (outflow alerts look at these).
DEBIT_TYPES: Final = frozenset(
    {"withdrawal", "transfer_out", "card_payment", "loan_repayment", "fee"}
)
CHANNELS: Final = ("mobile", "online", "branch", "atm", "pos", "call_center")
PRODUCTS: Final = ("deposit", "wealth", "fund", "bond", "insurance", "loan")
#: Products that count as investment holdings (risk-assessment expiry, suitability).
INVESTMENT_PRODUCTS: Final = frozenset({"wealth", "fund", "bond", "insurance"})
SEGMENTS: Final = ("retail", "sme")
PRODUCT_RISKS: Final = ("R1", "R2", "R3", "R4", "R5")
RISK_TYPES: Final = ("C1", "C2", "C3", "C4", "C5")
#: How a relationship manager (or the CRM) was in touch with the customer.
CONTACT_CHANNELS: Final = ("phone", "branch", "video", "message", "email", "visit")
#: reached = spoke with the customer; no_answer = attempt without contact; declined =
#: the customer did not want to talk now; follow_up = spoke, another contact is planned.
CONTACT_OUTCOMES: Final = ("reached", "no_answer", "declined", "follow_up")
#: How a customer answered an offer: accepted; declined (said no); ignored (the marketing
#: system's verdict when no answer came within its own deadline).
OFFER_OUTCOMES: Final = ("accepted", "declined", "ignored")

#: Input topic names (before the optional TIERSTREAM_TOPIC_PREFIX).
TOPIC_TRANSACTIONS: Final = "transactions"
TOPIC_BALANCES: Final = "balances"
TOPIC_PROFILES: Final = "customer-profiles"
TOPIC_ASSESSMENTS: Final = "risk-assessments"
TOPIC_CONTACTS: Final = "contacts"
#: How customers answered tierstream's offers (written by the campaign systems).
TOPIC_OFFER_RESPONSES: Final = "offer-responses"
#: Relationship managers' tier overrides (written by the CRM).
TOPIC_TIER_OVERRIDES: Final = "tier-overrides"
#: Requests to erase a customer (right to be forgotten): a customer-keyed input like the
#: others, so it meets the customer's events in one partition and the aligner orders it
#: among them by event time; last in the tie-break order, so an event stamped at the
#: same millisecond is applied first and erased with the rest.
TOPIC_ERASURE_REQUESTS: Final = "erasure-requests"
#: Customer-keyed, co-partitioned inputs (the order is the aligner's tie-break order).
INPUT_TOPICS: Final = (
    TOPIC_TRANSACTIONS,
    TOPIC_BALANCES,
    TOPIC_PROFILES,
    TOPIC_ASSESSMENTS,
    TOPIC_CONTACTS,
    TOPIC_OFFER_RESPONSES,
    TOPIC_TIER_OVERRIDES,
    TOPIC_ERASURE_REQUESTS,  # last: see TOPIC_ERASURE_REQUESTS
)
#: The clock's topic: NOT keyed by customer (one tick per partition per interval, written
#: into that partition), so it is deliberately not in INPUT_TOPICS.
TOPIC_TICKS: Final = "ticks"
TICK_TOPICS: Final = (TOPIC_TICKS,)

#: Audit trail of profile reads over HTTP (written by streams/http/views.py, keyed by customer)
#: and of rules publications (``tierstream rules publish``, keyed ``rules``).
TOPIC_AUDIT: Final = "audit"
#: Versions of the rules, one record per publication (``tierstream rules publish``), read
#: from the beginning by every worker: one partition, compacted, broker-stamped times.
TOPIC_RULES: Final = "rules"

#: Output topic names (before the optional prefix).
TOPIC_TIER_CHANGES: Final = "tier-changes"
TOPIC_OFFERS: Final = "offers"
TOPIC_ALERTS: Final = "alerts"
TOPIC_DEAD_LETTERS: Final = "dead-letters"
OUTPUT_TOPICS: Final = (TOPIC_TIER_CHANGES, TOPIC_OFFERS, TOPIC_ALERTS, TOPIC_DEAD_LETTERS)


@dataclass(frozen=True, slots=True)
class Transaction:
    """One posted transaction on one account (topic ``transactions``)."""

    event_id: str
    customer_id: str
    account_id: str
    ts: int  # epoch ms, UTC
    type: str  # one of TRANSACTION_TYPES
    amount: Decimal  # > 0, in ``currency``
    currency: str  # ISO 4217, upper case
    channel: str  # one of CHANNELS
    balance_after: Decimal | None = None  # the account's balance after it, if known
    product_risk: int | None = None  # 1..5 for R1..R5 (investment_buy)

    kind: Literal["transaction"] = "transaction"


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """An account balance snapshot from core banking (topic ``balances``)."""

    event_id: str
    customer_id: str
    account_id: str
    ts: int
    product: str  # one of PRODUCTS
    balance: Decimal  # >= 0, in ``currency``
    currency: str

    kind: Literal["balance"] = "balance"


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """Profile facts the tiering needs (topic ``customer-profiles``). No names, no PII
    beyond the birth date used for birthday greetings and the age rules."""

    event_id: str
    customer_id: str
    ts: int
    segment: str  # one of SEGMENTS
    marketing_consent: bool
    birth_date: str | None = None  # ISO date YYYY-MM-DD
    #: the customer asked not to be contacted for service either (reviews, renewals)
    service_contact_opt_out: bool = False

    kind: Literal["profile"] = "profile"


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """A risk-preference questionnaire result (topic ``risk-assessments``)."""

    event_id: str
    customer_id: str
    ts: int
    score: int  # 0..100
    investment_experience_years: float  # >= 0

    kind: Literal["assessment"] = "assessment"


@dataclass(frozen=True, slots=True)
class Contact:
    """A logged contact with the customer, written by the CRM (topic ``contacts``).

    Why an input of its own: the relationship-review cadence runs from the last
    contact, and the CRM is the only system that knows about calls and visits."""

    event_id: str
    customer_id: str
    ts: int
    channel: str  # one of CONTACT_CHANNELS
    outcome: str  # one of CONTACT_OUTCOMES

    kind: Literal["contact"] = "contact"


@dataclass(frozen=True, slots=True)
class OfferResponse:
    """How the customer answered one of tierstream's offers (topic ``offer-responses``,
    written by the marketing / campaign systems that deliver the offers).

    Why an input and not a side table: the answer changes what the customer is offered
    next (a declined kind waits ``offers.after_decline_days``), so it must reach the
    customer's state in event-time order with everything else. ``offer_event_id`` is
    the ``event_id`` of the offer (32 hex); the state remembers the kind and tier of
    the customer's recent offers to attribute it (state/responses.py)."""

    event_id: str
    customer_id: str
    ts: int
    offer_event_id: str  # the offer's event_id (32 lower-case hex)
    outcome: str  # one of OFFER_OUTCOMES
    channel: str | None = None  # where the customer answered (snake_case), if known
    product_id: str | None = None  # the product taken or refused, if the offer had several

    kind: Literal["offer_response"] = "offer_response"


@dataclass(frozen=True, slots=True)
class TierOverride:
    """A relationship manager sets (or, with ``tier`` None, clears) the customer's tier
    (topic ``tier-overrides``, written by the CRM).

    Why an input of its own: the data can get a tier wrong (a client's assets at
    another branch, a family office, a known departure), and only a person can say so;
    the override holds until ``until`` or until cleared, and every one is audited."""

    event_id: str
    customer_id: str
    ts: int
    tier: str | None  # one of the tiers; None clears the override in effect
    until: int | None  # epoch ms when it expires (after ts); None: until cleared
    set_by: str  # who (the relationship manager's id)
    reason: str  # why, in a few words

    kind: Literal["tier_override"] = "tier_override"


@dataclass(frozen=True, slots=True)
class Tick:
    """The clock's "it is now ``ts``" for one partition (topic ``ticks``).

    Why time as an event: the core never reads a clock, so time-driven triggers fire
    when a tick says their time has come; replaying the ticks replays the timers.
    ``event_id`` is ``tick-<partition>-<ts_ms>``."""

    event_id: str
    partition: int
    ts: int

    kind: Literal["tick"] = "tick"


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    """Erase everything held about one customer (topic ``erasure-requests``).

    Not an event for the core: the shell deletes the customer's state, profile and
    timers (streams/pipeline/processor.py) and writes an audit record of who asked.
    ``requested_by`` names the person or system that asked (it becomes the audit
    record's principal); ``reason`` is free text, e.g. a ticket number."""

    event_id: str
    customer_id: str
    ts: int
    requested_by: str
    reason: str | None = None

    kind: Literal["erasure"] = "erasure"


InputEvent = (
    Transaction
    | BalanceSnapshot
    | CustomerProfile
    | RiskAssessment
    | Contact
    | OfferResponse
    | TierOverride
)
