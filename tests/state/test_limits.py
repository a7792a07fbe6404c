"""The core's limits (state/limits.py, docs/rules.md "Limits"): an event the state
cannot hold is a CoreError raised before any mutation, and no accepted sequence of
events can grow a state past ``state_size_bound(rules)`` <= ``limits.max_state_bytes``."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import CHANNELS, InputEvent
from state.core import CoreError, apply, fire_timers
from state.customer import Account, CustomerState, MadeOffer, OfferOutcome
from state.limits import LEDGER_ROWS, MAX_FEN, SET_BY_CHARS, state_size_bound
from state.rules import OFFER_KINDS, Rules, _default_table
from state.windows import N_CHANNELS
from tests.state.helpers import DAY, RULES, T0, assess, at, bal, prof, rules_with, tx

YEAR_1 = -62135600400000  # 0001-01-01T00:00:00+01:00: the record of issue 18
BIG = "999999999999999.99999999"  # the largest amount the decoder lets through


def _rejected(
    state: CustomerState,
    event: InputEvent,
    field: str,
    rules: Rules = RULES,
    limit: str | None = None,
) -> str:
    """Apply must raise CoreError(field) and leave the state byte for byte as it was."""
    before = state.to_bytes()
    with pytest.raises(CoreError) as info:
        apply(state, event, rules)
    assert info.value.field == field, info.value
    assert info.value.limit == limit, info.value.limit
    assert state.to_bytes() == before
    return info.value.reason


def _started() -> CustomerState:
    state = apply(None, bal(at(0), "600000", account="a0"), RULES).state
    return apply(state, prof(at(0)), RULES).state


# ------------------------------------------------------------------ rules


def test_limits_defaults_are_the_documented_ones() -> None:
    lim = RULES.limits
    assert (lim.max_payload_bytes, lim.max_key_bytes) == (65536, 512)
    assert (lim.max_id_chars, lim.max_field_chars) == (128, 64)
    assert (lim.min_year, lim.max_year, lim.max_future_skew_ms) == (1900, 2200, 300_000)
    assert (lim.max_accounts, lim.max_state_bytes) == (256, 1_000_000)
    assert lim.min_ts_ms == -2208988800000  # 1900-01-01T00:00:00Z
    assert lim.max_ts_ms == 7289654399999  # 2200-12-31T23:59:59.999Z
    assert lim.decoder() == {
        "max_bytes": 65536,
        "max_future_skew_ms": 300_000,
        "max_key_bytes": 512,
        "max_id_chars": 128,
        "max_field_chars": 64,
        "min_year": 1900,
        "max_year": 2200,
    }


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("max_id_chars = 0", "limits.max_id_chars"),
        ("max_id_chars = 129", "limits.max_id_chars"),
        ("max_field_chars = 34", "limits.max_field_chars"),
        ("min_year = 999", "limits.min_year"),
        ("min_year = 2000\nmax_year = 1999", "limits.max_year"),
        ("max_year = 9001", "limits.max_year"),
        ("max_accounts = 0", "limits.max_accounts"),
        ("max_future_skew_ms = -1", "limits.max_future_skew_ms"),
        ("max_key_bytes = true", "limits.max_key_bytes"),
        ("max_accounts = 5000", "limits.max_state_bytes"),  # the worst state: > 1 MB
        ("max_state_bytes = 100000", "limits.max_state_bytes"),
    ],
)
def test_bad_limits_stop_start_up_naming_the_key(tmp_path, text: str, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        rules_with(tmp_path, f"[limits]\n{text}\n")


def test_limits_at_their_defaults_leave_the_derived_version_as_it_was(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rule files without a version got a hash of the effective table before [limits]
    existed: their version (and every decision id) must not change with the upgrade."""
    r = rules_with(tmp_path, '[tiers]\naffluent = "400000"\n')
    table = _default_table()
    del table["limits"]
    for later in ("min_days_in_tier", "downgrade_grace_days", "review"):  # issue 21's keys
        del table["tiers"][later]
    del table["offers"]["after_decline_days"], table["offers"]["answerable_offers"]  # issue 23
    for section, keys in _ISSUE_22_KEYS.items():  # at their defaults, also left out
        for key in keys:
            *parents, last = f"{section}.{key}".split(".")
            node = table
            for part in parents:
                node = node[part]
            del node[last]
    table["tiers"]["affluent"] = "400000"
    digest = hashlib.sha256(orjson.dumps(table, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert r.version == f"2026.11+{digest[:8]}"
    assert r.version == "2026.11+6c016e2b"  # what the code before issues 22 and 23 derived
    changed = rules_with(tmp_path, '[tiers]\naffluent = "400000"\n[limits]\nmax_accounts = 64\n')
    assert changed.version != r.version and changed.limits.max_accounts == 64
    for text in (
        '[value]\ndeposit_nim = "0.02"\n',
        '[tiers.behaviour.hnw]\ncontribution_cny = "1"\n',
        "[offers]\nanswerable_offers = 8\n",
        "[offers.after_decline_days]\nwealth_products = 7\n",
    ):
        other = rules_with(tmp_path, '[tiers]\naffluent = "400000"\n' + text)
        assert other.version != r.version  # a later key set: a rule set of its own


#: Keys issue 22 added, by table (state/rules.py: _LATER_KEYS).
_ISSUE_22_KEYS = {
    "tiers": ("inflow_months", "behaviour"),
    "offers": (
        "digital_banking_max_avg_cny",
        "branch_priority_min_transactions",
        "branch_priority_share_over",
        "branch_priority_min_avg_cny",
    ),
    "offers.cooldown_days": ("branch_priority",),
    "alerts.cooldown_days": ("rfm_slipping",),
    "rfm": ("monetary",),
    "value": ("deposit_nim", "wealth_fee_rate", "loan_spread", "card_interchange", "fees"),
    "care": ("slipping_segments", "slipping_min_tier"),
}


# ------------------------------------------------------------------ event time


def test_a_time_in_year_one_is_a_core_error_not_a_crash() -> None:
    """Issue 18: year 1 at +01:00 made local_day raise ValueError('year 0 ...')."""
    assert "limits.min_year" in _rejected(
        _started(), bal(YEAR_1, "1"), "ts", limit="limits.min_year"
    )
    with pytest.raises(CoreError) as info:
        apply(None, tx(YEAR_1), RULES)
    assert info.value.field == "ts"


@pytest.mark.parametrize(
    ("ts", "ok"),
    [
        (RULES.limits.min_ts_ms, True),
        (RULES.limits.min_ts_ms - 1, False),
        (RULES.limits.max_ts_ms, True),
        (RULES.limits.max_ts_ms + 1, False),
        (253402300799999, False),  # 9999-12-31T23:59:59.999Z
    ],
)
def test_event_time_range_is_inclusive(ts: int, ok: bool) -> None:
    if ok:
        assert apply(None, bal(ts, "1"), RULES).status == "applied"
    else:
        with pytest.raises(CoreError, match=r"limits\.m.._year"):
            apply(None, bal(ts, "1"), RULES)


def test_timers_refuse_a_time_outside_the_years() -> None:
    state = _started()
    before = state.to_bytes()
    for now in (YEAR_1, RULES.limits.max_ts_ms + 1):
        with pytest.raises(CoreError) as info:
            fire_timers(state, now, "tick-0-1", RULES)
        assert info.value.field == "ts"
    assert state.to_bytes() == before
    assert fire_timers(state, RULES.limits.max_ts_ms, "tick-0-2", RULES).status == "fired"


def test_birth_dates_outside_the_years_are_refused() -> None:
    for birth, limit in (("1899-12-31", "min"), ("9999-12-31", "max")):  # 9999: next in 10000
        _rejected(
            _started(), prof(at(1), birth_date=birth), "birth_date", limit=f"limits.{limit}_year"
        )
    assert apply(_started(), prof(at(1), birth_date="2200-12-31"), RULES).status == "applied"


# ------------------------------------------------------------------ ids, money


def test_ids_longer_than_the_limit_are_refused() -> None:
    rules = replace(RULES, limits=replace(RULES.limits, max_id_chars=8))
    state = apply(None, bal(at(0), "1", customer="c1"), rules).state
    ids = "limits.max_id_chars"
    _rejected(state, bal(at(1), "1", account="a" * 9), "account_id", rules, ids)
    _rejected(state, tx(at(1), event_id="e" * 9), "event_id", rules, ids)
    with pytest.raises(CoreError, match=r"limits\.max_id_chars"):
        apply(None, bal(at(1), "1", customer="c" * 9), rules)


@pytest.mark.parametrize("amount", ["1000000000000000", "123456789.1234567890123456789", "1E+20"])
def test_money_beyond_the_decoders_range_is_refused(amount: str) -> None:
    _rejected(_started(), tx(at(1), amount), "amount")
    _rejected(_started(), bal(at(1), amount), "balance")


# ------------------------------------------------------------------ accounts


def test_the_first_event_of_one_account_too_many_is_refused() -> None:
    rules = replace(RULES, limits=replace(RULES.limits, max_accounts=3))
    state = None
    for i in range(3):
        state = apply(state, bal(at(0), "100", account=f"a{i}"), rules).state
    assert state is not None
    limit = "limits.max_accounts"
    reason = _rejected(state, bal(at(1), "100", account="a3"), "account_id", rules, limit)
    assert "limits.max_accounts = 3" in reason
    _rejected(state, tx(at(1), balance_after="5", account="a3"), "account_id", rules, limit)
    # known accounts go on; a transaction without a balance creates no account
    assert apply(state, bal(at(1), "200", account="a1"), rules).status == "applied"
    assert apply(state, tx(at(1), account="a3"), rules).status == "applied"
    assert len(state.accounts) == 3


# ------------------------------------------------------------------ 64-bit sums


def test_balances_whose_aum_would_leave_64_bits_are_refused() -> None:
    """GBP 9.00: each balance is 9e17 fen; eleven would overflow what orjson writes."""
    state = None
    for i in range(10):
        state = apply(state, bal(at(0), BIG, account=f"g{i}", currency="GBP"), RULES).state
    assert state is not None and state.aum_fen <= MAX_FEN
    reason = _rejected(state, bal(at(1), BIG, account="g10", currency="GBP"), "balance")
    assert "the AUM" in reason
    _rejected(
        state, tx(at(1), "1", balance_after=BIG, account="g11", currency="GBP"), "balance_after"
    )
    # a loan does not count in AUM: it is accepted
    assert apply(state, bal(at(1), BIG, account="l", product="loan", currency="GBP"), RULES)
    state.to_bytes()  # and the state can still be written


def test_transactions_whose_all_time_sum_would_leave_64_bits_are_refused() -> None:
    state = _started()
    for i in range(10):
        apply(state, tx(at(1 + i), BIG, currency="GBP"), RULES)
    reason = _rejected(state, tx(at(12), BIG, currency="GBP"), "amount")
    assert "all-time transaction sum" in reason
    # fees are not counted: no sum grows, so they stay acceptable
    assert apply(state, tx(at(12), BIG, type="fee", currency="GBP"), RULES).status == "applied"
    assert len(state.to_bytes()) < state_size_bound(RULES)


# ------------------------------------------------------------------ the size bound


def test_default_rules_bound_the_state_well_under_the_changelog_limit() -> None:
    bound = state_size_bound(RULES)
    assert bound <= RULES.limits.max_state_bytes
    assert 150_000 < bound < 200_000  # docs/rules.md quotes it


def _worst_state(rules: Rules) -> CustomerState:
    """Every part of a state at the largest size the bound allows for it, set directly
    (reachable or not): the bound must hold for it too."""
    lim = rules.limits
    wide = "\U0001f600" * lim.max_id_chars  # 4 bytes of UTF-8 each
    s = CustomerState(wide)
    big = -(2**63)
    s.version = s.updated_at = s.day = s.late_events = s.aum_fen = big
    for i in range(lim.max_accounts):
        key = f"{i:04d}" + "\U0001f600" * (lim.max_id_chars - 4)
        s.accounts[key] = Account(big, 2**64 - 1, "-" + BIG, big, "insurance", "CNY")
    w = s.windows
    w.count = w.sum_fen = w.day = w.day_sum = w.base = w.last = big
    w.channels = [big] * N_CHANNELS
    w.day_entries = [big] * N_CHANNELS
    # closed buckets at their worst: every varint of every bucket at 10 bytes
    w.closed = b"\xff" * (rules.window_days * (1 + 10 + -(-N_CHANNELS // 2) + 10 * N_CHANNELS + 10))
    n = rules.dedup_size
    s.seen_keys = b"\xff" * (8 * n)
    s.seen_days = [big, 1] * n
    s.aum_samples = [big] * (3 * (rules.aum_drop_days + 1))
    s.tx_first_day = s.tx_last_day = s.tx_total_fen = s.tx_first_fen = big
    s.tx_days = 2**63 - 1
    s.segment, s.consent, s.birth_date, s.profile_ts, s.profile_tie = (
        "retail",
        True,
        "2000-01-01",
        big,
        2**64 - 1,
    )
    s.risk_score, s.risk_experience, s.risk_type = big, -1.2345678901234567e-300, "C5"
    s.assessed_ts, s.assess_tie = big, 2**64 - 1
    s.tier, s.tier_since = "affluent", big
    s.last_offer = {k: big for k in rules.offer_kinds}
    s.last_alert = {k: big for k in rules.alert_cooldown_days}
    s.greeted_year = s.churn_day = s.timer_mark = s.first_day = s.last_contact_ts = big
    s.below_since = big
    s.campaigns_done = {c.id: big for c in rules.campaigns}
    long_kind = "k" * 64  # the longest kind any rules allow (an earlier rules' campaign)
    s.recent_offers = [
        MadeOffer(2**64 - 1, big, long_kind, "affluent") for _ in range(rules.answerable_offers)
    ]
    s.offer_outcomes = {k: OfferOutcome("accepted", big, 2**64 - 1) for k in rules.offer_kinds}
    s.service_opt_out = True
    s.ledger = [big] * (4 * LEDGER_ROWS)
    s.ledger_from = s.override_until = s.override_ts = big
    s.override_tie = 2**64 - 1
    s.override_tier = s.rules_tier = "affluent"
    s.override_by = "\U0001f600" * min(lim.max_field_chars, SET_BY_CHARS)
    return s


def test_the_worst_state_is_within_the_bound(tmp_path) -> None:  # type: ignore[no-untyped-def]
    campaigns = "".join(
        f'[[campaigns]]\nid = "{"c" * 60}{i:04d}"\nstart = 2026-02-01\nend = 2026-02-02\n'
        f'kind = "{"k" * 60}{i:04d}"\n'
        for i in range(20)
    )
    for rules in (RULES, rules_with(tmp_path, f'[tiers]\nbasis = "avg_daily"\n{campaigns}')):
        size = len(_worst_state(rules).to_bytes())
        bound = state_size_bound(rules)
        assert size <= bound
        assert size > 0.9 * bound  # and the bound is not loose


def test_offer_caps_of_kinds_the_rules_no_longer_emit_are_dropped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The bound counts the rules' offer kinds: leftovers of earlier rules' campaigns
    go as soon as a new kind is recorded."""
    state = _started()
    state.last_offer["old_campaign_kind"] = at(0)
    state.last_offer.pop("wealth_products", None)
    apply(state, bal(at(1), "1200000", account="a0"), RULES)  # affluent -> hnw: an offer
    assert "old_campaign_kind" not in state.last_offer
    assert set(state.last_offer) <= RULES.offer_kinds
    assert RULES.offer_kinds >= set(OFFER_KINDS)


def test_campaigns_the_rules_no_longer_list_are_forgotten_when_one_fires() -> None:
    from tests.state.test_triggers import CAMPAIGN_RULES, _campaign_customer

    state = _campaign_customer("1500000")
    state.campaigns_done["dropped-2025"] = state.day  # recent, but gone from the rules
    fire_timers(state, at(41, 1), "tick-0-1", CAMPAIGN_RULES)
    assert "dropped-2025" not in state.campaigns_done
    assert "spring-2026" in state.campaigns_done


# ------------------------------------------------------------------ at the extremes

_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_RULES_SMALL = replace(RULES, limits=replace(RULES.limits, max_accounts=12))


@st.composite
def _extreme_events(draw: Any) -> list[InputEvent]:
    """Events at the limits: longest ids of 4-byte characters, largest amounts in the
    dearest currency, account churn, days spread over the window, every channel."""
    n = draw(st.integers(1, 120))
    ident = st.text(alphabet='\U0001f600"\\é', min_size=1, max_size=128)
    out: list[InputEvent] = []
    for i in range(n):
        ts = T0 + draw(st.integers(0, 200)) * DAY + draw(st.integers(0, DAY - 1))
        kind = draw(st.sampled_from(["tx", "tx", "bal", "prof", "assess"]))
        eid = f"{i}-" + draw(ident)[:120]
        account = draw(st.sampled_from([draw(ident), "a", "b"]))
        amount = draw(st.sampled_from([BIG, "0.01", "123456789012345.12345678"]))
        ccy = draw(st.sampled_from(["GBP", "CNY", "JPY"]))
        if kind == "tx":
            out.append(
                tx(ts, amount, type=draw(st.sampled_from(["deposit", "withdrawal", "fee"])),
                   channel=draw(st.sampled_from(CHANNELS)), currency=ccy, account=account,
                   balance_after=draw(st.sampled_from([None, BIG, "-" + BIG])), event_id=eid)
            )  # fmt: skip
        elif kind == "bal":
            product = draw(st.sampled_from(["deposit", "fund", "loan"]))
            out.append(
                bal(ts, amount, account=account, product=product, currency=ccy, event_id=eid)
            )
        elif kind == "prof":
            out.append(prof(ts, consent=draw(st.booleans()), segment="sme", event_id=eid))
        else:
            out.append(assess(ts, draw(st.integers(0, 100)), 0.5, event_id=eid))
    return out


@_SETTINGS
@given(_extreme_events())
def test_no_accepted_sequence_outgrows_the_bound(events: list[InputEvent]) -> None:
    bound = state_size_bound(_RULES_SMALL)
    state: CustomerState | None = None
    for ev in events:
        before = state.to_bytes() if state is not None else None
        try:
            state = apply(state, ev, _RULES_SMALL).state
        except CoreError:
            assert state is None or state.to_bytes() == before
            continue
        size = len(state.to_bytes())
        assert size <= bound
        assert CustomerState.from_bytes(state.to_bytes()) == state
