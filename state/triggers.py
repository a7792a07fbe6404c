"""Time-driven triggers: dormancy, review cadence, birthdays, campaigns, assessment expiry.

Why time is data: the core never reads a clock, so a trigger fires when some event says
its time has come -- a tick from the clock (``core.fire_timers``) or, at the latest,
the customer's next input event (``core.apply`` first fires whatever fell due at or
before that event's time, on the state as it was before the event). Both see the same
state at the same due time, so the decisions do not depend on how often the clock
ticks: ticks every minute, every hour or one tick at the end give the same decision
ids. Ticks only bound how *late* a timer fires.

The model, in three rules (docs/rules.md states them for users):

* Each trigger yields **instances**: a due time and a stable trigger id such as
  ``dormancy:2026-03-31`` or ``review:2026-02-14``. Instances follow from the state
  alone (last transaction day, tier, last contact, birth date, campaign calendar,
  assessment time), never from the moment of evaluation.
* An instance is **decided once**, on the state as it stands at its due time: the
  state's watermark ``timer_mark`` says every instance due at or before it has been
  decided. A condition that only becomes true later (say, the customer becomes
  affluent while already dormant) does not revive a decided instance.
* A decision's ``event_id`` derives from the trigger id (not from the tick), its ``ts``
  is the due time (so caps and ``reason`` are the same however late it fires), and its
  ``cause_event_id`` is the tick or input event it fired on (for tracing).

``next_due_ms`` lists only instances that can fire given the state (e.g. no birthday
instance without consent); the state only changes through events, after which the
shell asks again. Caps are left out of that filter (conservative: it may be early,
never late).

Two more kinds of instance came with issue 21, both deciding the tier
(state/tier_policy.py): a tier evaluation that time alone causes (``tier:<instant>``:
a held downgrade whose wait is over, an average-daily basis that crossed a line), and,
under a timeline of rules versions (state/timeline.py), the switch to each version
(``rules:<version>``), due for every customer at its ``effective_from``. Each instance
is decided by the version in force at its due time; at equal times the switch comes
first, then a tier evaluation, then the others (which may depend on the tier).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from schemas.events import INVESTMENT_PRODUCTS
from schemas.timefmt import format_ts_utc
from state import alerts, offers, overrides
from state.catalogue import Campaign
from state.customer import NO_DAY, CustomerState
from state.decisions import TIER_RANK, Decision
from state.money import fen_str
from state.offers import birthday_in, local_date
from state.recommend import product_ids
from state.rules import DAY_MS, Rules
from state.slipping import fire_slip, iso_day, slip_due
from state.tier_policy import retier_at, tier_due, tier_trigger
from state.timeline import RulesTimeline, Version

__all__ = [
    "TRIGGER_KINDS",
    "Due",
    "due_between",
    "fire_due",
    "next_due_ms",
    "spread_offset_ms",
]

#: Every kind of time trigger, as it starts a trigger id (``reason.trigger`` of the
#: decisions it fires: ``dormancy:2026-03-31``, ``campaign:<id>``, ...). Readers (the
#: demo's live view, its test) take the list from here.
TRIGGER_KINDS = (
    "dormancy",
    "review",
    "birthday",
    "campaign",
    "assessment_expiry",
    "override_expiry",
    "rfm_slip",
)

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_HNW = TIER_RANK["hnw"]
#: How long a decided campaign is remembered (after that the watermark alone suffices).
_CAMPAIGN_MEMORY_DAYS = 730


@dataclass(frozen=True, slots=True)
class Due:
    """One trigger instance: due at ``ts`` (epoch ms); ``trigger`` is its stable id."""

    ts: int
    kind: str  # one of TRIGGER_KINDS
    key: int  # the local day (dormancy, review), year (birthday) or assessment ms
    campaign: Campaign | None = None

    @property
    def trigger(self) -> str:
        """The stable trigger id (built only when something fires: next_due_ms runs
        after every event and must stay cheap)."""
        if self.campaign is not None:
            return f"campaign:{self.campaign.id}"
        if self.kind in ("dormancy", "review", "rfm_slip"):
            return f"{self.kind}:{iso_day(self.key)}"
        return f"{self.kind}:{self.key}"


def spread_offset_ms(customer_id: str, spread_ms: int) -> int:
    """The customer's deterministic slot within a campaign's spread window: a stable
    hash of the customer id, so replays put every customer in the same slot and the
    campaign's offers go out evenly over the window instead of in one burst."""
    h = int.from_bytes(hashlib.blake2b(customer_id.encode(), digest_size=8).digest(), "big")
    return h % spread_ms


# --------------------------------------------------------------------- instances
# Each ``_next_*`` returns the first instance strictly after ``after`` that can fire
# given the state, or None; instances of one trigger have strictly increasing times.


# The ``_*_due`` helpers return (due ms, key) -- or just the due ms -- without building
# a ``Due``: ``next_due_ms`` runs after every applied event and only needs the time.


def _dormancy_due(state: CustomerState, rules: Rules, after: int) -> tuple[int, int] | None:
    if state.tier is None or TIER_RANK[state.tier] < rules.dormancy_min_tier:
        return None
    ref = state.tx_last_day if state.tx_days else state.first_day
    if ref == NO_DAY:
        return None
    day = ref + rules.dormancy_days
    ts = rules.day_start_ms(day)
    return (ts, day) if ts > after else None


def _next_dormancy(state: CustomerState, rules: Rules, after: int) -> Due | None:
    d = _dormancy_due(state, rules, after)
    return Due(d[0], "dormancy", d[1]) if d is not None else None


def _review_due(state: CustomerState, rules: Rules, after: int) -> tuple[int, int] | None:
    # a service contact: no marketing consent needed, but not after an opt-out
    if state.tier is None or state.service_opt_out:
        return None
    every = rules.cadence_days.get(state.tier, 0)
    if every <= 0:
        return None
    ref = rules.local_day(max(state.last_contact_ts, state.tier_since, 0))
    k = max(1, (rules.local_day(after) - ref) // every)
    while True:
        day = ref + k * every
        ts = rules.day_start_ms(day)
        if ts > after:
            return ts, day
        k += 1


def _next_review(state: CustomerState, rules: Rules, after: int) -> Due | None:
    d = _review_due(state, rules, after)
    return Due(d[0], "review", d[1]) if d is not None else None


#: Memos of pure calendar functions (birth date text -> date; (birth date text, year)
#: -> local day of that year's birthday; local day -> its year). Bounded: cleared
#: when full, so a hit always returns what a fresh evaluation would.
_BIRTHS: dict[str, date] = {}
_BIRTHDAY_DAYS: dict[tuple[str, int], int] = {}
_DAY_YEARS: dict[int, int] = {}
_MEMO_MAX = 100_000


def _birth(text: str) -> date:
    birth = _BIRTHS.get(text) if type(text) is str else None
    if birth is None:
        birth = date.fromisoformat(text)
        if len(_BIRTHS) >= _MEMO_MAX:
            _BIRTHS.clear()
        _BIRTHS[text] = birth
    return birth


def _birthday_day(text: str, birth: date, year: int) -> int:
    key = (text, year)
    day = _BIRTHDAY_DAYS.get(key)
    if day is None:
        day = birthday_in(year, birth).toordinal() - _EPOCH_ORDINAL
        if len(_BIRTHDAY_DAYS) >= _MEMO_MAX:
            _BIRTHDAY_DAYS.clear()
        _BIRTHDAY_DAYS[key] = day
    return day


def _year_of(day: int) -> int:
    year = _DAY_YEARS.get(day)
    if year is None:
        year = local_date(day).year
        if len(_DAY_YEARS) >= _MEMO_MAX:
            _DAY_YEARS.clear()
        _DAY_YEARS[day] = year
    return year


def _birthday_due(state: CustomerState, rules: Rules, after: int) -> tuple[int, int] | None:
    text = state.birth_date
    if text is None or not state.consent:
        return None
    birth = _birth(text)
    year = max(_year_of(rules.local_day(after)), state.greeted_year + 1, birth.year + 1)
    while True:
        ts = rules.day_start_ms(_birthday_day(text, birth, year))
        if ts > after:
            return ts, year
        year += 1


def _next_birthday(state: CustomerState, rules: Rules, after: int) -> Due | None:
    d = _birthday_due(state, rules, after)
    return Due(d[0], "birthday", d[1]) if d is not None else None


def _campaign_ts(state: CustomerState, c: Campaign, rules: Rules) -> int:
    start = rules.day_start_ms(c.start_day)
    last = rules.day_start_ms(c.start_day + 1) - 1  # a short (DST) day keeps it on the day
    return min(start + spread_offset_ms(state.customer_id, c.spread_ms), last)


def _campaign_dues(state: CustomerState, rules: Rules, after: int) -> list[Due]:
    if not rules.campaigns or not state.consent or state.segment is None:
        return []
    tier = state.tier or "mass"
    out = []
    for c in rules.campaigns:
        if c.id in state.campaigns_done or tier not in c.tiers:
            continue
        if state.segment not in c.segments:
            continue
        ts = _campaign_ts(state, c, rules)
        if ts > after:
            out.append(Due(ts, "campaign", c.start_day, c))
    return out


def _holds_investments(state: CustomerState) -> bool:
    # a plain loop: any() over a generator costs ~0.5 µs more, after every event
    for a in state.accounts.values():  # noqa: SIM110
        if a.product in INVESTMENT_PRODUCTS and a.fen > 0:
            return True
    return False


def _expiry_due(state: CustomerState, rules: Rules, after: int) -> int | None:
    if state.assessed_ts < 0 or state.service_opt_out:  # a service contact
        return None
    ts = state.assessed_ts + rules.assessment_validity_days * DAY_MS
    if ts <= after or not _holds_investments(state):
        return None
    return ts


def _next_expiry(state: CustomerState, rules: Rules, after: int) -> Due | None:
    ts = _expiry_due(state, rules, after)
    return Due(ts, "assessment_expiry", state.assessed_ts) if ts is not None else None


def _next_slip(state: CustomerState, rules: Rules, after: int) -> Due | None:
    d = slip_due(state, rules, after)
    return Due(d[0], "rfm_slip", d[1]) if d is not None else None


def _override_due(state: CustomerState, after: int) -> int | None:
    """A tier override's expiry: exactly at its ``until`` (state/overrides.py)."""
    if state.override_tier is None or state.override_until <= after:
        return None
    return state.override_until


def _next_override(state: CustomerState, rules: Rules, after: int) -> Due | None:
    ts = _override_due(state, after)
    return Due(ts, overrides.EXPIRY, ts) if ts is not None else None


_SINGLE = (_next_dormancy, _next_expiry, _next_override, _next_slip)
_REPEATING = (_next_review, _next_birthday)


def next_due_ms(state: CustomerState, rules: Rules | RulesTimeline) -> int | None:
    """The earliest event time (epoch ms) at which some trigger could fire for this
    customer, or None if none can until the state changes (the shell asks again after
    every applied event and every firing). Never later than the real next firing.
    With a timeline, the next switch of version is one such time for everyone."""
    after = state.timer_mark
    if after < 0:
        return None
    if isinstance(rules, Rules):
        return _next_due(state, rules, after)
    best = _next_due(state, rules.at(after), after)
    switch = rules.next_switch(after)
    if switch is not None and (best is None or switch < best):
        best = switch
    return best


def _next_due(state: CustomerState, rules: Rules, after: int) -> int | None:
    # the same instances as _SINGLE, _REPEATING, the campaigns and the tier, in order
    best: int | None = None
    d = _dormancy_due(state, rules, after)
    if d is not None:
        best = d[0]
    ts = _expiry_due(state, rules, after)
    if ts is not None and (best is None or ts < best):
        best = ts
    d = _review_due(state, rules, after)
    if d is not None and (best is None or d[0] < best):
        best = d[0]
    d = _birthday_due(state, rules, after)
    if d is not None and (best is None or d[0] < best):
        best = d[0]
    ts = _override_due(state, after)
    if ts is not None and (best is None or ts < best):
        best = ts
    d = slip_due(state, rules, after)
    if d is not None and (best is None or d[0] < best):
        best = d[0]
    if rules.campaigns:
        for c in _campaign_dues(state, rules, after):
            if best is None or c.ts < best:
                best = c.ts
    if state.tier is not None and (rules.tier_policies or rules.tier_basis == "avg_daily"):
        ts = tier_due(state, rules, after)
        if ts is not None and (best is None or ts < best):
            best = ts
    return best


def due_between(state: CustomerState, rules: Rules, after: int, until: int) -> list[Due]:
    """Every instance with ``after < ts <= until``, in firing order (time, then id)."""
    out: list[Due] = []
    # Dormancy, reviews and birthdays are due at local midnights: none can lie in
    # (after, until] when both are on the same local day -- the common case for the
    # catch-up before an input event, which must stay cheap.
    midnights = rules.local_day(until) != rules.local_day(after)
    if midnights:
        for nxt in _SINGLE:
            d = nxt(state, rules, after)
            if d is not None and d.ts <= until:
                out.append(d)
        for nxt in _REPEATING:
            cursor = after
            while (d := nxt(state, rules, cursor)) is not None and d.ts <= until:
                out.append(d)
                cursor = d.ts
    else:  # the instances due at any time of day
        if state.assessed_ts >= 0 and not state.service_opt_out:  # _next_expiry's checks
            ts = state.assessed_ts + rules.assessment_validity_days * DAY_MS
            if after < ts <= until and _holds_investments(state):
                out.append(Due(ts, "assessment_expiry", state.assessed_ts))
        if state.override_tier is not None and after < state.override_until <= until:
            out.append(Due(state.override_until, overrides.EXPIRY, state.override_until))
    if rules.campaigns:
        out.extend(d for d in _campaign_dues(state, rules, after) if d.ts <= until)
    if len(out) > 1:
        out.sort(key=lambda d: (d.ts, d.trigger))
    return out


# --------------------------------------------------------------------- firing


def fire_due(
    state: CustomerState,
    now_ms: int,
    cause_event_id: str,
    rules: Rules | RulesTimeline,
    out: list[Decision],
) -> bool:
    """Decide every instance due in (watermark, now_ms] and move the watermark to
    ``now_ms``. Returns whether anything was due (i.e. the state changed).

    With a timeline the span is cut at each switch of version: what falls due before
    it is decided by the rules in force before it, the switch itself is an instance
    (always due: it moves the watermark past it), and what follows by the new rules."""
    mark = state.timer_mark
    if mark < 0 or now_ms <= mark:
        return False
    if isinstance(rules, Rules):
        fired = _fire_span(state, mark, now_ms, cause_event_id, rules, out)
    else:
        fired = False
        start = mark
        for version in rules.switches(mark, now_ms):
            before = version.effective_from - 1
            if before > start:
                span_rules = rules.at(before)
                fired |= _fire_span(state, start, before, cause_event_id, span_rules, out)
            _fire_switch(state, version, out)
            fired = True
            start = before  # instances due at the switch itself come after it
        fired |= _fire_span(state, start, now_ms, cause_event_id, rules.at(now_ms), out)
    if fired:
        state.timer_mark = now_ms
    return fired


def _fire_span(
    state: CustomerState,
    after: int,
    until: int,
    cause_event_id: str,
    rules: Rules,
    out: list[Decision],
) -> bool:
    """Decide the instances due in (after, until] under one version of the rules.

    A tier evaluation changes what the others see (a tier, its start), so the others
    are listed again after each one; at equal times it goes first."""
    # Only events change tiers without a policy, except that an average-daily basis
    # moves at midnights: none lies in the span when it is within one local day (the
    # common case of the catch-up before an event, which must stay cheap).
    if not rules.tier_policies and (
        rules.tier_basis != "avg_daily" or rules.local_day(until) == rules.local_day(after)
    ):
        dues = due_between(state, rules, after, until)
        for d in dues:
            _fire(state, d, cause_event_id, rules, out)
        return bool(dues)
    fired = False
    others_after = tier_after = after
    while True:
        t = tier_due(state, rules, tier_after)
        if t is not None and t > until:
            t = None
        for d in due_between(state, rules, others_after, until if t is None else t - 1):
            _fire(state, d, cause_event_id, rules, out)
            fired = True
        if t is None:
            return fired
        retier_at(state, rules, t, tier_trigger(t), out)
        fired = True
        tier_after, others_after = t, t - 1


def _fire_switch(state: CustomerState, version: Version, out: list[Decision]) -> None:
    """A version takes effect: if it decides tiers differently from the one before,
    the customer's tier is evaluated by it at that instant (``rules:<version>``)."""
    if version.retier and state.tier is not None:
        retier_at(state, version.rules, version.effective_from, version.trigger, out)


def _fire(state: CustomerState, d: Due, cause: str, rules: Rules, out: list[Decision]) -> None:
    if d.kind == "dormancy":
        _fire_dormancy(state, d, cause, rules, out)
    elif d.kind == "review":
        _fire_review(state, d, cause, rules, out)
    elif d.kind == "birthday":
        _fire_birthday(state, d, cause, rules, out)
    elif d.kind == "campaign":
        _fire_campaign(state, d, cause, rules, out)
    elif d.kind == "rfm_slip":
        fire_slip(state, d.key, d.ts, cause, d.trigger, rules, out)
    elif d.kind == overrides.EXPIRY:
        # still the override it was due for (an override record in between may have
        # replaced or cleared it: then its own expiry, if any, is another instance)
        if state.override_tier is not None and state.override_until == d.ts:
            overrides.expire(state, d.ts, rules, out)
    else:
        _fire_expiry(state, d, cause, rules, out)


def _fire_dormancy(
    state: CustomerState, d: Due, cause: str, rules: Rules, out: list[Decision]
) -> None:
    reason = {
        "days_without_transaction": str(rules.dormancy_days),
        "last_transaction_day": iso_day(state.tx_last_day) if state.tx_days else "",
        "known_since_day": iso_day(state.first_day) if not state.tx_days else "",
        "tier": state.tier or "",
        "aum_cny": fen_str(state.aum_fen),
        "trigger": d.trigger,
    }
    severity = "critical" if TIER_RANK[state.tier or "mass"] >= _HNW else "warning"
    a = alerts.emit_alert(
        state, "dormant_high_value", severity, d.ts, cause, d.trigger, rules, reason
    )
    if a is not None:
        out.append(a)
    out.extend(
        offers.recommending(
            state,
            "reactivation",
            d.ts,
            cause,
            d.trigger,
            rules,
            {"trigger": d.trigger, "days_without_transaction": str(rules.dormancy_days)},
        )
    )


def _fire_review(
    state: CustomerState, d: Due, cause: str, rules: Rules, out: list[Decision]
) -> None:
    contact = state.last_contact_ts
    reason = {
        "trigger": d.trigger,
        "tier": state.tier or "",
        "cadence_days": str(rules.cadence_days.get(state.tier or "mass", 0)),
        "last_contact_at": format_ts_utc(contact) if contact >= 0 else "",
        "addressed_to": "relationship_manager",
    }
    o = offers.emit(state, "relationship_review", d.ts, cause, d.trigger, rules, reason)
    if o is not None:
        out.append(o)


def _fire_birthday(
    state: CustomerState, d: Due, cause: str, rules: Rules, out: list[Decision]
) -> None:
    year = d.key
    if year <= state.greeted_year:  # once a year, even if the zone or rules changed
        return
    day = local_date(rules.local_day(d.ts))
    o = offers.emit(
        state,
        "birthday_greeting",
        d.ts,
        cause,
        d.trigger,
        rules,
        {"birthday": day.isoformat(), "trigger": d.trigger},
    )
    if o is not None:
        state.greeted_year = year
        out.append(o)


def _fire_campaign(
    state: CustomerState, d: Due, cause: str, rules: Rules, out: list[Decision]
) -> None:
    c = d.campaign
    assert c is not None
    if c.id in state.campaigns_done:
        return
    # decided now, whatever the outcome: once per campaign per customer. Forget the
    # campaigns long past and those the rules no longer list (they cannot fire), so
    # the map is bounded by the rules (state/limits.py).
    horizon = c.start_day - _CAMPAIGN_MEMORY_DAYS
    known = rules.campaign_ids
    for old in [k for k, day in state.campaigns_done.items() if day < horizon or k not in known]:
        del state.campaigns_done[old]
    state.campaigns_done[c.id] = c.start_day
    only = c.products or None
    if only is not None and not product_ids(state, rules, d.ts, only):
        return  # nothing in this campaign suits the customer: no offer at all
    reason = {
        "trigger": d.trigger,
        "campaign": c.id,
        "start": iso_day(c.start_day),
        "end": iso_day(c.end_day),
    }
    out.extend(offers.recommending(state, c.kind, d.ts, cause, d.trigger, rules, reason, only))


def _fire_expiry(
    state: CustomerState, d: Due, cause: str, rules: Rules, out: list[Decision]
) -> None:
    reason = {
        "trigger": d.trigger,
        "reason": "assessment_expired",
        "expired_at": format_ts_utc(d.ts),
        **offers.assessment_facts(state),
    }
    o = offers.emit(state, "risk_assessment_due", d.ts, cause, d.trigger, rules, reason)
    if o is not None:
        out.append(o)
