"""The core: one customer's state + one event + the rules -> new state + decisions.

Why one pure function: the stream processors, replay/backfill, the benchmark and the
test oracle all call ``apply``; because it reads no clock, does no I/O and uses no
randomness, the same events in the same order give byte-identical states and the same
decisions everywhere.

Why it mutates: copying the state per event would dominate the hot path (the service
targets >= 20k events/s), so ``apply`` updates the given state in place and returns
it in the Outcome. Callers that need the old state take ``state.copy()`` first. Every
check that can raise ``CoreError`` runs before the first mutation, so a rejected event
leaves the state exactly as it was.

Statuses: "applied"; "duplicate" (the event_id was seen recently: nothing changes, not
even ``version``); "late" (a transaction older than the window with nothing else to
apply: only the late counter and the dedup set change). Balances, profiles and risk
assessments are never late: they are last-writer-wins by (event time, event_id).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from schemas.events import (
    CONTACT_CHANNELS,
    CONTACT_OUTCOMES,
    DEBIT_TYPES,
    PRODUCTS,
    SEGMENTS,
    TRANSACTION_TYPES,
    BalanceSnapshot,
    Contact,
    CustomerProfile,
    InputEvent,
    OfferResponse,
    RiskAssessment,
    TierOverride,
    Transaction,
)
from schemas.values import MAX_MONEY_DECIMALS
from state import alerts, contribution, lifetime, offers, overrides, responses, triggers
from state.customer import NO_DAY, Account, CustomerState, event_key
from state.decisions import Decision
from state.limits import MAX_FEN
from state.money import fen_str, to_fen
from state.risk import risk_type
from state.rules import Rules
from state.tier_policy import after_aum_change
from state.tiers import record_aum_sample, trim_aum_samples
from state.timeline import RulesTimeline
from state.windows import CHANNEL_INDEX

__all__ = ["CoreError", "Outcome", "apply", "fire_timers"]

_TX_TYPES = frozenset(TRANSACTION_TYPES)
_CONTACT_CHANNELS = frozenset(CONTACT_CHANNELS)
_CONTACT_OUTCOMES = frozenset(CONTACT_OUTCOMES)
_PRODUCTS = frozenset(PRODUCTS)
_SEGMENTS = frozenset(SEGMENTS)
#: Money the core accepts: below 10^15 (adjusted exponent < 15), at most 25 characters
#: as text ("-999999999999999.99999999", the longest value of the decoder's range).
_MONEY_DIGITS = 15
_MONEY_TEXT = 25


@dataclass(frozen=True, slots=True)
class Outcome:
    state: CustomerState
    decisions: tuple[Decision, ...]
    #: apply: "applied" | "duplicate" | "late" | "unmatched" (state/responses.py);
    #: fire_timers: "fired" (something was due; maybe no decisions) | "idle" (nothing)
    status: str
    answered: tuple[str, str, str] | None = None  #: an offer response's kind, tier, outcome


class CoreError(ValueError):
    """The event cannot be applied (e.g. unknown currency): it goes to dead letters.
    ``limit``: the rules' limit it comes from (``limits.max_accounts``...), or None."""

    def __init__(self, field: str, reason: str, limit: str | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.limit = limit


def apply(state: CustomerState | None, event: InputEvent, rules: Rules | RulesTimeline) -> Outcome:
    """Apply one event to one customer's state (None = a new customer). See module doc.

    ``rules``: one set of rules, or a timeline of versions (state/timeline.py), of
    which the event is decided by the version in force at its time."""
    timeline: RulesTimeline | None = None
    if not isinstance(rules, Rules):
        timeline = rules
        rules = timeline.at(event.ts)
    lim = rules.limits  # the checks inline: they run for every event (hot path)
    ts = event.ts
    if type(ts) is not int or ts < lim.min_ts_ms or ts > lim.max_ts_ms:
        _check_time("ts", ts, rules)
    eid = event.event_id
    if type(eid) is not str or not 0 < len(eid) <= lim.max_id_chars:
        _check_id("event_id", eid, rules)
    if state is None:
        _check_id("customer_id", event.customer_id, rules)
        state = CustomerState(event.customer_id)
    elif event.customer_id != state.customer_id:
        raise CoreError(
            "customer_id",
            f"event for '{event.customer_id}' applied to the state of '{state.customer_id}'",
        )
    key = event_key(event.event_id)
    if state.has_seen(key):
        return Outcome(state, (), "duplicate")
    if isinstance(event, Transaction):
        return _transaction(state, event, key, rules, timeline)
    if isinstance(event, BalanceSnapshot):
        return _balance(state, event, key, rules, timeline)
    if isinstance(event, CustomerProfile):
        return _profile(state, event, key, rules, timeline)
    if isinstance(event, RiskAssessment):
        return _assessment(state, event, key, rules, timeline)
    if isinstance(event, Contact):
        return _contact(state, event, key, rules, timeline)
    if isinstance(event, OfferResponse):
        return _response(state, event, key, rules, timeline)
    if isinstance(event, TierOverride):
        return _override(state, event, key, rules, timeline)
    raise CoreError("kind", f"unsupported event type {type(event).__name__}")


def fire_timers(
    state: CustomerState, now_ms: int, cause_event_id: str, rules: Rules | RulesTimeline
) -> Outcome:
    """Fire every time trigger due at or before ``now_ms`` (see state/triggers.py).

    ``cause_event_id`` is the tick (or whatever brought the time) and becomes the
    decisions' ``cause_event_id`` (tier re-evaluations name their trigger instead);
    their ``event_id``s derive from stable trigger ids, so firing from another tick
    gives the same ids. Idempotent: the same or an earlier ``now_ms`` again emits
    nothing. ``version`` moves only if something was due. With a timeline, each
    instance is decided by the version in force at its due time, and every switch of
    version in between is an instance itself (state/timeline.py).
    """
    if not cause_event_id:
        raise CoreError("cause_event_id", "must not be empty")
    _check_time("ts", now_ms, rules if isinstance(rules, Rules) else rules.at(now_ms))
    out: list[Decision] = []
    if not triggers.fire_due(state, now_ms, cause_event_id, rules, out):
        return Outcome(state, (), "idle")
    state.version += 1
    return Outcome(state, tuple(out), "fired")


# ------------------------------------------------------------------ validation
# The decoder holds inputs to the same limits; the core checks again (it is called from
# elsewhere too): what it cannot hold is a CoreError, never a crash (state/limits.py).


def _check_time(field: str, ts: int, rules: Rules) -> None:
    lim = rules.limits
    if type(ts) is not int:
        raise CoreError(field, f"must be an integer epoch ms, got {type(ts).__name__}")
    if ts < lim.min_ts_ms:
        name = "limits.min_year"
        raise CoreError(field, f"{ts} is before the year {lim.min_year} ({name})", name)
    if ts > lim.max_ts_ms:
        name = "limits.max_year"
        raise CoreError(field, f"{ts} is after the year {lim.max_year} ({name})", name)


def _check_id(field: str, value: str, rules: Rules) -> None:
    limit = rules.limits.max_id_chars
    if type(value) is not str or not value:
        raise CoreError(field, "must be a non-empty string")
    if len(value) > limit:
        name = "limits.max_id_chars"
        raise CoreError(field, f"{len(value)} characters, more than {limit} ({name})", name)


def _check_new_account(state: CustomerState, field: str, rules: Rules) -> None:
    """Before the first event of one more account: is there room for it?"""
    limit = rules.limits.max_accounts
    if len(state.accounts) >= limit:
        raise CoreError(
            field,
            f"the customer already has {len(state.accounts)} accounts (limits.max_accounts "
            f"= {limit}); the first event of another one is refused",
            "limits.max_accounts",
        )


def _check_fen(field: str, fen: int, what: str) -> None:
    """A sum the state keeps must stay within its 64-bit range (state.limits.MAX_FEN)."""
    if not -MAX_FEN <= fen <= MAX_FEN:
        raise CoreError(
            field,
            f"{what} would be {fen_str(fen)} CNY, beyond the +-{fen_str(MAX_FEN)} CNY "
            "a customer's state can hold",
        )


def _check_balance(
    field: str, state: CustomerState, acct: Account | None, product: str, fen: int
) -> None:
    """Setting ``acct`` (None: a new account) to ``fen`` as ``product`` must leave the
    balance and the AUM within the state's 64-bit range."""
    aum = state.aum_fen
    if acct is not None and acct.product != "loan":
        aum -= acct.fen
    if product != "loan":
        aum += fen
    if fen > MAX_FEN or fen < -MAX_FEN or aum > MAX_FEN or aum < -MAX_FEN:
        _check_fen(field, fen, "the balance")
        _check_fen(field, aum, "the AUM")


def _rate(currency: str, rules: Rules) -> Decimal:
    rate = rules.fx.get(currency)
    if rate is None:
        raise CoreError("currency", f"unknown currency '{currency}' (not in rules.fx)")
    return rate


def _money(field: str, value: Decimal, positive: bool = False) -> None:
    """Finite, below 10^15, at most 25 characters as text: all of the decoder's range,
    nothing that makes to_fen build a huge int or a stored balance long (limits.py)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise CoreError(field, f"must be a finite decimal, got {value!r}")
    if positive and value <= 0:
        raise CoreError(field, f"must be > 0, got {value}")
    if value.adjusted() >= _MONEY_DIGITS or len(str(value)) > _MONEY_TEXT:
        raise CoreError(
            field,
            f"must be below 10^15 with at most {MAX_MONEY_DECIMALS} decimal places, "
            f"got {str(value)[:40]}",
        )


def _newer(ts: int, tie: int, cur_ts: int, cur_tie: int) -> bool:
    """Last-writer-wins order: later event time wins; equal times go to the larger
    event key (64-bit hash of the event_id), so the order of arrival never matters."""
    return ts > cur_ts or (ts == cur_ts and tie > cur_tie)


# ------------------------------------------------------------------ bookkeeping


def _advance(state: CustomerState, ev_day: int, rules: Rules) -> None:
    """Move the customer's event-time 'today' forward and drop what fell out of range."""
    if state.ledger_from == NO_DAY:
        contribution.start_ledger(state, ev_day)
    if ev_day <= state.day:
        return
    first = state.day == NO_DAY
    state.day = ev_day
    if first:
        return
    state.windows.evict_through(ev_day - rules.window_days)
    trim_aum_samples(state, ev_day, rules)
    # The dedup set is in insertion order and each entry holds the customer's day at
    # insertion, which never decreases: the stale entries are a prefix.
    state.forget_seen_before(ev_day - rules.dedup_days)


def _catch_up(
    state: CustomerState,
    event: InputEvent,
    ev_day: int,
    rules: Rules,
    timeline: RulesTimeline | None,
) -> list[Decision]:
    """Before an event changes the state, fire what fell due at or before its time, on
    the state as it was then (see state/triggers.py: this is what makes the timers'
    decisions independent of how often the clock ticks). A new customer starts its
    timers at its first event: nothing is due before the bank knew them."""
    out: list[Decision] = []
    if state.timer_mark < 0:
        state.first_day = ev_day
    else:
        triggers.fire_due(state, event.ts, event.event_id, timeline or rules, out)
    if event.ts > state.timer_mark:
        state.timer_mark = event.ts
    return out


def _finish(state: CustomerState, event: InputEvent, key: int, rules: Rules) -> None:
    if event.ts > state.updated_at:
        state.updated_at = event.ts
    state.version += 1
    state.remember(key, rules.dedup_size)


def _set_account(
    state: CustomerState,
    account_id: str,
    event: InputEvent,
    key: int,
    balance: Decimal,
    currency: str,
    product: str,
    fen: int,
) -> None:
    old = state.accounts.get(account_id)
    if old is not None and old.product != "loan":
        state.aum_fen -= old.fen
    state.accounts[account_id] = Account(
        ts=event.ts, tie=key, balance=str(balance), fen=fen, product=product, currency=currency
    )
    if product != "loan":
        state.aum_fen += fen


# ------------------------------------------------------------------ decisions


def _after_aum_event(
    state: CustomerState,
    event: InputEvent,
    aum_before: int,
    tier_before: str | None,
    rules: Rules,
    out: list[Decision],
) -> None:
    """Record the AUM sample, re-tier (hysteresis and the tier policies,
    state/tier_policy.py), and check for an AUM drop."""
    aum = record_aum_sample(state, aum_before)
    after_aum_change(state, rules, event.ts, event.event_id, out)
    if aum < aum_before:
        a = alerts.aum_drop(state, event, tier_before, rules)
        if a is not None:
            out.append(a)


def _common_tail(
    state: CustomerState, event: InputEvent, ev_day: int, rules: Rules, out: list[Decision]
) -> None:
    """Checks that any applied event can trigger: churn risk. (Birthday greetings are
    timers since issue 9: state/triggers.py.)"""
    a = alerts.churn_risk(state, event, rules)
    if a is not None:
        out.append(a)


# ------------------------------------------------------------------ event kinds


def _transaction(
    state: CustomerState,
    tx: Transaction,
    key: int,
    rules: Rules,
    timeline: RulesTimeline | None = None,
) -> Outcome:
    rate = _rate(tx.currency, rules)
    channel = CHANNEL_INDEX.get(tx.channel)
    if channel is None:
        raise CoreError("channel", f"unknown channel '{tx.channel}'")
    if tx.type not in _TX_TYPES:
        raise CoreError("type", f"unknown transaction type '{tx.type}'")
    _money("amount", tx.amount, positive=True)
    bal = tx.balance_after
    if bal is not None:
        _money("balance_after", bal)
    if tx.product_risk is not None and not 1 <= tx.product_risk <= 5:
        raise CoreError("product_risk", f"must be 1..5, got {tx.product_risk}")
    account_id = tx.account_id
    if type(account_id) is not str or not 0 < len(account_id) <= rules.limits.max_id_chars:
        _check_id("account_id", account_id, rules)
    ev_day = rules.local_day(tx.ts)

    late = state.day != NO_DAY and ev_day <= state.day - rules.window_days
    acct = state.accounts.get(account_id)
    newer = bal is not None and (acct is None or _newer(tx.ts, key, acct.ts, acct.tie))
    if newer and acct is None and len(state.accounts) >= rules.limits.max_accounts:
        _check_new_account(state, "account_id", rules)
    if late and not newer:
        state.late_events += 1
        state.remember(key, rules.dedup_size)
        return Outcome(state, (), "late")
    amount_fen = to_fen(tx.amount, rate)
    bal_fen = to_fen(bal, rate) if newer and bal is not None else 0
    if not late and tx.type not in rules.exclude_types:
        # every window and first-day sum is part of the all-time sum (amounts are > 0)
        total = state.tx_total_fen + amount_fen
        if total > MAX_FEN:
            _check_fen("amount", total, "the all-time transaction sum")
    product = acct.product if acct is not None else ""  # "": only seen on transactions
    if newer:
        _check_balance("balance_after", state, acct, product, bal_fen)

    # ---- mutation starts here (nothing below raises CoreError)
    out = _catch_up(state, tx, ev_day, rules, timeline)
    aum_before = state.aum_fen
    tier_before = state.tier
    _advance(state, ev_day, rules)
    counted = not late and tx.type not in rules.exclude_types
    if late:
        state.late_events += 1
    elif counted:
        new_day = state.windows.add(ev_day, amount_fen, channel)
        lifetime.count_transaction(state, ev_day, amount_fen, new_day)
    if not late:  # fees and interest too: a fee is income (state/contribution.py)
        contribution.book(state, ev_day, tx.type, amount_fen, rules)
    if newer and bal is not None:
        _set_account(state, account_id, tx, key, bal, tx.currency, product, bal_fen)
    _finish(state, tx, key, rules)

    _after_aum_event(state, tx, aum_before, tier_before, rules, out)
    if not late:
        if tx.type in DEBIT_TYPES:
            a = alerts.large_outflow(state, tx, amount_fen, aum_before, tier_before, rules)
            if a is not None:
                out.append(a)
        if tx.type == "investment_buy":
            a = alerts.suitability_mismatch(state, tx, rules)
            if a is not None:
                out.append(a)
            o = offers.assessment_due_on_buy(state, tx, rules)
            if o is not None:
                out.append(o)
        if counted:  # digital banking, priority branch service
            out.extend(offers.channel_offers(state, tx, ev_day, rules))
    _common_tail(state, tx, ev_day, rules, out)
    return Outcome(state, tuple(out), "applied")


def _balance(
    state: CustomerState,
    ev: BalanceSnapshot,
    key: int,
    rules: Rules,
    timeline: RulesTimeline | None = None,
) -> Outcome:
    rate = _rate(ev.currency, rules)
    if ev.product not in _PRODUCTS:
        raise CoreError("product", f"unknown product '{ev.product}'")
    _money("balance", ev.balance)
    account_id = ev.account_id
    if type(account_id) is not str or not 0 < len(account_id) <= rules.limits.max_id_chars:
        _check_id("account_id", account_id, rules)
    ev_day = rules.local_day(ev.ts)
    acct = state.accounts.get(account_id)
    if acct is None and len(state.accounts) >= rules.limits.max_accounts:
        _check_new_account(state, "account_id", rules)
    newer = acct is None or _newer(ev.ts, key, acct.ts, acct.tie)
    fen = to_fen(ev.balance, rate) if newer else 0
    if newer:
        _check_balance("balance", state, acct, ev.product, fen)

    out = _catch_up(state, ev, ev_day, rules, timeline)
    aum_before = state.aum_fen
    tier_before = state.tier
    _advance(state, ev_day, rules)
    if newer:
        _set_account(state, ev.account_id, ev, key, ev.balance, ev.currency, ev.product, fen)
    _finish(state, ev, key, rules)
    _after_aum_event(state, ev, aum_before, tier_before, rules, out)
    _common_tail(state, ev, ev_day, rules, out)
    return Outcome(state, tuple(out), "applied")


def _profile(
    state: CustomerState,
    ev: CustomerProfile,
    key: int,
    rules: Rules,
    timeline: RulesTimeline | None = None,
) -> Outcome:
    if ev.segment not in _SEGMENTS:
        raise CoreError("segment", f"unknown segment '{ev.segment}'")
    if ev.birth_date is not None:
        try:
            date.fromisoformat(ev.birth_date)
        except (TypeError, ValueError):
            raise CoreError("birth_date", f"not an ISO date: {ev.birth_date!r}") from None
        if len(ev.birth_date) != 10:
            raise CoreError("birth_date", f"not a YYYY-MM-DD date: {ev.birth_date!r}")
        lim = rules.limits
        year = int(ev.birth_date[:4])
        if not lim.min_year <= year <= lim.max_year:
            name = "limits.min_year" if year < lim.min_year else "limits.max_year"
            raise CoreError(
                "birth_date",
                f"{ev.birth_date} is outside the years {lim.min_year}..{lim.max_year} ({name})",
                name,
            )
    ev_day = rules.local_day(ev.ts)
    out = _catch_up(state, ev, ev_day, rules, timeline)
    _advance(state, ev_day, rules)
    if _newer(ev.ts, key, state.profile_ts, state.profile_tie):
        state.segment = ev.segment
        state.consent = bool(ev.marketing_consent)
        state.service_opt_out = bool(ev.service_contact_opt_out)
        state.birth_date = ev.birth_date
        state.profile_ts = ev.ts
        state.profile_tie = key
    _finish(state, ev, key, rules)
    _common_tail(state, ev, ev_day, rules, out)
    return Outcome(state, tuple(out), "applied")


def _assessment(
    state: CustomerState,
    ev: RiskAssessment,
    key: int,
    rules: Rules,
    timeline: RulesTimeline | None = None,
) -> Outcome:
    if isinstance(ev.score, bool) or not isinstance(ev.score, int) or not 0 <= ev.score <= 100:
        raise CoreError("score", f"must be an integer 0..100, got {ev.score!r}")
    exp = ev.investment_experience_years
    if (
        isinstance(exp, bool)
        or not isinstance(exp, int | float)
        or not (math.isfinite(exp) and exp >= 0)
    ):
        raise CoreError("investment_experience_years", f"must be >= 0, got {exp!r}")
    ev_day = rules.local_day(ev.ts)
    out = _catch_up(state, ev, ev_day, rules, timeline)
    _advance(state, ev_day, rules)
    if _newer(ev.ts, key, state.assessed_ts, state.assess_tie):
        state.risk_score = ev.score
        state.risk_experience = float(exp)
        state.risk_type = risk_type(ev.score, float(exp), rules)
        state.assessed_ts = ev.ts
        state.assess_tie = key
    _finish(state, ev, key, rules)
    _common_tail(state, ev, ev_day, rules, out)
    return Outcome(state, tuple(out), "applied")


def _contact(
    state: CustomerState,
    ev: Contact,
    key: int,
    rules: Rules,
    timeline: RulesTimeline | None = None,
) -> Outcome:
    """A logged contact: resets the review cadence if its outcome counts as a contact
    (``care.contact_outcomes``); otherwise it is only an applied event."""
    if ev.channel not in _CONTACT_CHANNELS:
        raise CoreError("channel", f"unknown contact channel '{ev.channel}'")
    if ev.outcome not in _CONTACT_OUTCOMES:
        raise CoreError("outcome", f"unknown contact outcome '{ev.outcome}'")
    ev_day = rules.local_day(ev.ts)
    out = _catch_up(state, ev, ev_day, rules, timeline)
    _advance(state, ev_day, rules)
    if ev.outcome in rules.contact_outcomes and ev.ts > state.last_contact_ts:
        state.last_contact_ts = ev.ts
    _finish(state, ev, key, rules)
    _common_tail(state, ev, ev_day, rules, out)
    return Outcome(state, tuple(out), "applied")


def _response(
    state: CustomerState,
    ev: OfferResponse,
    key: int,
    rules: Rules,
    timeline: RulesTimeline | None = None,
) -> Outcome:
    """An answer to an offer (state/responses.py); a customer without state stays so."""
    if ev.outcome not in responses.OUTCOMES:
        raise CoreError("outcome", f"unknown offer outcome '{ev.outcome}'")
    if not state.version:
        return Outcome(state, (), "unmatched")
    ev_day = rules.local_day(ev.ts)
    out = _catch_up(state, ev, ev_day, rules, timeline)
    _advance(state, ev_day, rules)
    answered = responses.record(state, ev, key, rules)
    _finish(state, ev, key, rules)
    _common_tail(state, ev, ev_day, rules, out)
    return Outcome(state, tuple(out), "applied" if answered else "unmatched", answered)


def _override(
    state: CustomerState,
    ev: TierOverride,
    key: int,
    rules: Rules,
    timeline: RulesTimeline | None = None,
) -> Outcome:
    """A relationship manager's tier override, or its clearing (state/overrides.py)."""
    if ev.until is not None:
        _check_time("until", ev.until, rules)
    bad = overrides.invalid(ev, rules)
    if bad is not None:
        raise CoreError(*bad)
    ev_day = rules.local_day(ev.ts)
    out = _catch_up(state, ev, ev_day, rules, timeline)
    _advance(state, ev_day, rules)
    overrides.apply_override(state, ev, key, rules, out)
    _finish(state, ev, key, rules)
    _common_tail(state, ev, ev_day, rules, out)
    return Outcome(state, tuple(out), "applied")
