"""Property tests of the core: determinism, idempotence, isolation between customers,
hysteresis, exact money and serialization."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import CHANNELS, DEBIT_TYPES, BalanceSnapshot, InputEvent, Transaction
from state.core import CoreError, apply
from state.customer import CustomerState, event_key
from state.decisions import TIER_RANK, TierChange
from state.money import to_fen
from state.rules import Rules
from tests.state.helpers import DAY, RULES, T0, bal, prof, tx

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Long dedup memory so "a redelivery is ignored" holds for any position in the stream.
LONG_DEDUP_RULES: Rules = replace(RULES, dedup_days=1000)

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("3000000"), places=2)
ccy = st.sampled_from(["CNY", "CNY", "USD", "HKD", "JPY"])
times = st.integers(min_value=0, max_value=150 * DAY).map(lambda t: T0 + t)


@st.composite
def events(draw, customer: str = "c1", n_max: int = 30) -> list[InputEvent]:  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, n_max))
    out: list[InputEvent] = []
    for i in range(n):
        k = draw(st.sampled_from(["tx", "tx", "tx", "bal", "prof"]))
        eid = f"{customer}-{i}"
        ts = draw(times)
        if k == "tx":
            out.append(
                tx(
                    ts,
                    str(draw(money)),
                    type=draw(
                        st.sampled_from(
                            [
                                "deposit",
                                "withdrawal",
                                "transfer_out",
                                "investment_buy",
                                "fee",
                                "card_payment",
                            ]
                        )
                    ),
                    channel=draw(st.sampled_from(CHANNELS)),
                    currency=draw(ccy),
                    balance_after=str(draw(money)) if draw(st.booleans()) else None,
                    account=draw(st.sampled_from(["a", "b"])),
                    customer=customer,
                    product_risk=draw(st.sampled_from([None, 1, 3, 5])),
                    event_id=eid,
                )
            )
        elif k == "bal":
            out.append(
                bal(
                    ts,
                    str(draw(money)),
                    account=draw(st.sampled_from(["a", "b", "w"])),
                    product=draw(st.sampled_from(["deposit", "fund", "loan"])),
                    currency=draw(ccy),
                    customer=customer,
                    event_id=eid,
                )
            )
        else:
            out.append(
                prof(
                    ts,
                    segment=draw(st.sampled_from(["retail", "sme"])),
                    consent=draw(st.booleans()),
                    birth_date="2000-01-20",
                    customer=customer,
                    event_id=eid,
                )
            )
    return out


def replay(evs: list[InputEvent], rules: Rules = RULES) -> tuple[bytes, list[dict[str, Any]]]:
    state: CustomerState | None = None
    decisions: list[dict[str, Any]] = []
    for e in evs:
        o = apply(state, e, rules)
        state = o.state
        decisions.extend(d.to_record() for d in o.decisions)
    assert state is not None
    return state.to_bytes(), decisions


@SETTINGS
@given(events())
def test_deterministic(evs: list[InputEvent]) -> None:
    assert replay(evs) == replay(evs)


@SETTINGS
@given(events(), st.data())
def test_redelivered_events_change_nothing(evs: list[InputEvent], data) -> None:  # type: ignore[no-untyped-def]
    with_dups = list(evs)
    for _ in range(data.draw(st.integers(1, 5))):
        src = data.draw(st.integers(0, len(evs) - 1))
        pos = data.draw(st.integers(with_dups.index(evs[src]) + 1, len(with_dups)))
        with_dups.insert(pos, evs[src])
    assert replay(with_dups, LONG_DEDUP_RULES) == replay(evs, LONG_DEDUP_RULES)


@SETTINGS
@given(events("c1", 15), events("c2", 15), events("c3", 15), st.randoms(use_true_random=False))
def test_interleaving_customers_does_not_change_any_result(a, b, c, rnd) -> None:  # type: ignore[no-untyped-def]
    alone = {"c1": replay(a), "c2": replay(b), "c3": replay(c)}
    queues = {"c1": list(a), "c2": list(b), "c3": list(c)}
    states: dict[str, CustomerState | None] = {k: None for k in queues}
    decisions: dict[str, list] = {k: [] for k in queues}  # type: ignore[type-arg]
    while any(queues.values()):
        cid = rnd.choice([k for k, q in queues.items() if q])
        o = apply(states[cid], queues[cid].pop(0), RULES)
        states[cid] = o.state
        decisions[cid].extend(d.to_record() for d in o.decisions)
    for cid, (b_alone, d_alone) in alone.items():
        s = states[cid]
        assert s is not None
        assert (s.to_bytes(), decisions[cid]) == (b_alone, d_alone)


@SETTINGS
@given(events())
def test_serialization_round_trip_at_every_step_changes_nothing(evs: list[InputEvent]) -> None:
    state: CustomerState | None = None
    decisions: list[dict[str, Any]] = []
    for e in evs:
        if state is not None:
            b = state.to_bytes()
            state = CustomerState.from_bytes(b)
            assert state.to_bytes() == b
        o = apply(state, e, RULES)
        state = o.state
        decisions.extend(d.to_record() for d in o.decisions)
    assert state is not None
    assert (state.to_bytes(), decisions) == replay(evs)


@SETTINGS
@given(events())
def test_money_sums_are_exact(evs: list[InputEvent]) -> None:
    """Window sum and AUM equal an independent exact recomputation."""
    state = None
    latest: dict[str, tuple[int, str, Decimal, str, str]] = {}
    products: dict[str, str] = {}
    counted: dict[str, int] = {}
    for e in evs:
        o = apply(state, e, RULES)
        state = o.state
        if isinstance(e, BalanceSnapshot | Transaction) and o.status == "applied":
            val = e.balance if isinstance(e, BalanceSnapshot) else e.balance_after
            if val is not None:
                cur = latest.get(e.account_id)
                # last writer wins by event time; equal times go to the larger
                # event_key (the core's documented tie-break, not string order)
                if cur is None or (e.ts, event_key(e.event_id)) > (cur[0], event_key(cur[1])):
                    latest[e.account_id] = (e.ts, e.event_id, val, e.currency, "")
                    if isinstance(e, BalanceSnapshot):
                        products[e.account_id] = e.product
        if isinstance(e, Transaction) and o.status == "applied" and e.type != "fee":
            day = RULES.local_day(e.ts)
            if day > state.day - RULES.window_days:
                counted[e.event_id] = day
    assert state is not None
    aum = sum(to_fen(v[2], RULES.fx[v[3]]) for k, v in latest.items() if products.get(k) != "loan")
    assert state.aum_fen == aum
    by_id = {e.event_id: e for e in evs}
    window = [by_id[i] for i, d in counted.items() if d > state.day - RULES.window_days]
    assert state.windows.count == len(window)
    assert state.windows.sum_fen == sum(
        to_fen(e.amount, RULES.fx[e.currency]) for e in window if isinstance(e, Transaction)
    )


@SETTINGS
@given(
    st.sampled_from(["affluent", "hnw", "private"]),
    st.lists(st.integers(0, 10_000), min_size=1, max_size=40),
)
def test_hysteresis_never_flaps_inside_the_band(tier: str, ticks: list[int]) -> None:
    """Once in a tier, any AUM path staying within [floor x 0.9, next floor) never
    produces a tier change."""
    rank = TIER_RANK[tier]
    floor = RULES.tier_floors_fen[rank]
    ceiling = RULES.tier_floors_fen[rank + 1] if rank + 1 < 4 else floor * 3
    lo = floor * 9 // 10
    state = apply(None, bal(T0, str(Decimal(floor) / 100)), RULES).state
    assert state.tier == tier
    for i, t in enumerate(ticks):
        fen = lo + (ceiling - 1 - lo) * t // 10_000
        o = apply(state, bal(T0 + (i + 1) * 3_600_000, str(Decimal(fen) / 100)), RULES)
        assert not any(isinstance(d, TierChange) for d in o.decisions)
    assert state.tier == tier


#: The documented default floors (docs/rules.md), written out here rather than read from
#: the rules, so the property below is checked against the documentation.
FLOOR_CNY = {"mass": 0, "affluent": 500_000, "hnw": 1_000_000, "private": 6_000_000}
TIERS_UP = ("mass", "affluent", "hnw", "private")
BAND = Decimal("0.10")


def documented_tier(previous: str | None, aum_cny: int) -> str:
    """The tier docs/rules.md gives after an AUM of ``aum_cny``: upgrade as soon as the
    AUM reaches a higher floor; downgrade only strictly below the current floor x (1 -
    band), to the tier the AUM is in; otherwise keep the tier."""
    natural = max((t for t in TIERS_UP if aum_cny >= FLOOR_CNY[t]), key=TIERS_UP.index)
    if previous is None or TIERS_UP.index(natural) > TIERS_UP.index(previous):
        return natural
    if aum_cny < FLOOR_CNY[previous] * (1 - BAND):
        return natural
    return previous


#: AUMs at and around every floor and every downgrade threshold, and anything else.
aums = st.one_of(
    st.integers(0, 8_000_000),
    st.sampled_from(
        [
            f + d
            for f in (450_000, 500_000, 900_000, 1_000_000, 5_400_000, 6_000_000)
            for d in (-1, 0, 1)
        ]
    ),
)


@SETTINGS
@given(st.lists(aums, min_size=1, max_size=40))
def test_every_step_has_the_tier_the_floors_and_band_give(path: list[int]) -> None:
    """Each balance in the path leaves the customer in the documented tier, and a tier
    change is emitted exactly when that tier changes (a core that never changed tier,
    or changed it without saying so, fails)."""
    assert list(RULES.tier_floors_fen) == [FLOOR_CNY[t] * 100 for t in TIERS_UP]
    state = None
    tier: str | None = None
    for i, cny in enumerate(path):
        o = apply(state, bal(T0 + i * 3_600_000, str(cny)), RULES)
        state = o.state
        before, tier = tier, documented_tier(tier, cny)
        assert state.tier == tier, (i, cny, before)
        changes = [d for d in o.decisions if isinstance(d, TierChange)]
        if tier == before:
            assert not changes, (i, cny, tier)
            continue
        assert len(changes) == 1, (i, cny, changes)
        change = changes[0]
        assert (change.from_tier, change.to_tier) == (before, tier)
        if before is None:
            assert change.direction == "initial"
        elif TIERS_UP.index(tier) > TIERS_UP.index(before):
            assert change.direction == "upgrade"
        else:
            assert change.direction == "downgrade"


@SETTINGS
@given(events(), st.sampled_from(["currency", "amount", "product"]))
def test_core_error_leaves_state_unchanged(evs: list[InputEvent], bad: str) -> None:
    state = None
    for e in evs:
        state = apply(state, e, RULES).state
    assert state is not None
    before = state.to_bytes()
    ts = T0 + 10 * DAY
    if bad == "currency":
        ev: InputEvent = tx(ts, "5", currency="ZZZ", balance_after="1", event_id="x")
    elif bad == "amount":
        ev = tx(ts, "-5", type=sorted(DEBIT_TYPES)[0], balance_after="1", event_id="x")
    else:
        ev = bal(ts, "5", product="boat", event_id="x")
    try:
        apply(state, ev, RULES)
    except CoreError:
        pass
    else:  # pragma: no cover
        raise AssertionError("expected CoreError")
    assert state.to_bytes() == before
