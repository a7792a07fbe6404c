"""The core's bookkeeping: LWW balances, windows in event time, late events, dedup,
errors that leave the state untouched, version/updated_at and BG/NBD statistics."""

from __future__ import annotations

from decimal import Decimal

import pytest

from state.core import CoreError, apply
from state.customer import CustomerState, event_key
from tests.state.helpers import RULES, assess, at, bal, prof, run, tx


def test_aum_sums_non_loan_accounts_in_cny_with_fx() -> None:
    st, _ = run(
        [
            bal(at(0), "100000", account="d1"),
            bal(at(0, 13), "10000.01", account="u1", currency="USD"),  # x 7.10
            bal(at(0, 14), "999999", account="l1", product="loan"),
            bal(at(0, 15), "1234.565", account="j1", currency="JPY"),  # x 0.047
        ]
    )
    # 100000 + 71000.071 -> 71000.07 + 58.024555 -> 58.02 ; the loan is excluded
    assert st.aum_fen == 10_000_000 + 7_100_007 + 5_802


def test_balance_is_last_writer_wins_by_event_time() -> None:
    st, outs = run([bal(at(5), "900000"), bal(at(3), "100")])  # the late snapshot is older
    assert st.accounts["acc1"].balance == "900000"  # the exact decimal text
    assert outs[1].status == "applied"  # balances are never 'late'
    assert outs[1].decisions == ()


def test_equal_timestamps_are_broken_by_event_id_whatever_the_arrival_order() -> None:
    a = run([bal(at(1), "1", event_id="b-a"), bal(at(1), "2", event_id="b-b")])[0]
    b = run([bal(at(1), "2", event_id="b-b"), bal(at(1), "1", event_id="b-a")])[0]
    # the larger 64-bit event key wins
    want = Decimal("1") if event_key("b-a") > event_key("b-b") else Decimal("2")
    assert Decimal(a.accounts["acc1"].balance) == Decimal(b.accounts["acc1"].balance) == want


def test_transaction_balance_after_updates_the_account_unless_older() -> None:
    st, _ = run(
        [
            bal(at(2), "5000"),
            tx(at(3), "100", type="withdrawal", balance_after="4900"),
            tx(at(1), "50", type="withdrawal", balance_after="9999"),  # older: ignored
        ]
    )
    assert st.accounts["acc1"].balance == "4900"
    assert st.accounts["acc1"].product == "deposit"  # product kept from the snapshot
    assert st.aum_fen == 490_000


def test_unknown_currency_is_a_core_error_and_leaves_state_unchanged() -> None:
    st, _ = run([bal(at(0), "1000"), tx(at(1), "10")])
    before = st.to_bytes()
    with pytest.raises(CoreError) as ei:
        apply(st, tx(at(2), "10", currency="XYZ", balance_after="5"), RULES)
    assert ei.value.field == "currency"
    assert "XYZ" in ei.value.reason and "rules.fx" in ei.value.reason
    assert isinstance(ei.value, ValueError)
    assert st.to_bytes() == before
    with pytest.raises(CoreError):
        apply(st, bal(at(2), "10", currency="XYZ"), RULES)
    assert st.to_bytes() == before


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (tx(at(1), "0"), "amount"),
        (tx(at(1), "-5"), "amount"),
        (tx(at(1), "NaN"), "amount"),
        (tx(at(1), "5", channel="pigeon"), "channel"),
        (tx(at(1), "5", type="gift"), "type"),
        (tx(at(1), "5", type="investment_buy", product_risk=9), "product_risk"),
        (bal(at(1), "5", product="yacht"), "product"),
        (prof(at(1), segment="vip"), "segment"),
        (prof(at(1), birth_date="1990-13-01"), "birth_date"),
        (assess(at(1), 101), "score"),
        (assess(at(1), 50, -1.0), "investment_experience_years"),
    ],
)
def test_invalid_events_raise_core_error_naming_the_field(event, field: str) -> None:  # type: ignore[no-untyped-def]
    st, _ = run([bal(at(0), "1000")])
    before = st.to_bytes()
    with pytest.raises(CoreError) as ei:
        apply(st, event, RULES)
    assert ei.value.field == field
    assert st.to_bytes() == before


def test_event_for_another_customer_is_rejected() -> None:
    st, _ = run([bal(at(0), "1000")])
    with pytest.raises(CoreError) as ei:
        apply(st, bal(at(1), "5", customer="c2"), RULES)
    assert ei.value.field == "customer_id"


def test_duplicate_changes_nothing_not_even_version() -> None:
    e = tx(at(1), "100", balance_after="600000")
    st, _outs = run([bal(at(0), "1000"), e])
    before = st.to_bytes()
    o = apply(st, e, RULES)
    assert o.status == "duplicate" and o.decisions == ()
    assert st.to_bytes() == before and st.version == 2


def test_version_counts_applied_events_and_updated_at_is_max_event_time() -> None:
    st, outs = run([bal(at(5), "1"), prof(at(2)), tx(at(4), "3")])
    assert [o.status for o in outs] == ["applied"] * 3
    assert st.version == 3
    assert st.updated_at == at(5)


def test_out_of_order_transactions_land_in_their_own_day_bucket() -> None:
    st, _ = run([tx(at(10), "100"), tx(at(3), "7.50", channel="atm"), tx(at(10, 20), "1")])
    d0 = RULES.local_day(at(0))
    assert st.windows.buckets[d0 + 3][0] == 750
    assert st.windows.day_channels(d0 + 3) == [0, 0, 0, 1, 0, 0]  # one at an ATM
    assert st.windows.buckets[d0 + 10][0] == 10_100
    assert st.windows.day_channels(d0 + 10) == [2, 0, 0, 0, 0, 0]
    assert st.windows.count == 3 and st.windows.sum_fen == 10_850


def test_transactions_older_than_the_window_are_late_and_counted() -> None:
    st, outs = run([tx(at(100), "100"), tx(at(10), "5"), tx(at(11), "5")])
    # window = 90 local days ending on day 100: days 11..100; day 10 is late
    assert [o.status for o in outs] == ["applied", "late", "applied"]
    assert st.late_events == 1
    assert st.windows.count == 2
    assert st.version == 2  # a late event is not applied
    assert outs[1].decisions == ()


def test_late_transaction_with_newer_balance_still_updates_the_account() -> None:
    st, outs = run(
        [tx(at(100), "100", account="a"), tx(at(5), "5", account="b", balance_after="77")]
    )
    assert outs[1].status == "applied"
    assert st.late_events == 1
    assert st.accounts["b"].balance == "77"
    assert st.windows.count == 1


def test_window_evicts_days_as_event_time_advances() -> None:
    st, _ = run([tx(at(0), "100"), tx(at(50), "200"), tx(at(95), "300")])
    # on day 95 the window is days 6..95: day 0 is gone
    assert st.windows.count == 2 and st.windows.sum_fen == 50_000
    st, _ = run([prof(at(200))], state=st)  # any event advances the customer's clock
    assert st.windows.count == 0 and st.windows.sum_fen == 0 and not st.windows.buckets


def test_fee_and_interest_move_balances_but_are_not_activity() -> None:
    st, _ = run(
        [
            tx(at(1), "5", type="fee", balance_after="995"),
            tx(at(2), "1", type="interest", balance_after="996"),
        ]
    )
    assert st.windows.count == 0 and st.tx_days == 0
    assert st.aum_fen == 99_600


def test_bgnbd_statistics_use_distinct_local_days_and_exact_repeat_spend() -> None:
    st, _ = run(
        [
            tx(at(3), "10"),
            tx(at(3, 18), "5"),  # same day: not a repeat
            tx(at(8), "20"),
            tx(at(1), "2.50"),  # out of order: new first day; day 3 becomes a repeat
            tx(at(8, 9), "0.01"),
        ]
    )
    d0 = RULES.local_day(at(0))
    assert (st.tx_first_day, st.tx_last_day, st.tx_days) == (d0 + 1, d0 + 8, 3)
    assert st.tx_first_fen == 250
    assert st.tx_total_fen - st.tx_first_fen == 1_500 + 2_001  # days 3 and 8
    from state.lifetime import history, mean_repeat_spend_cny

    assert history(st) == (2, 7, 7)
    assert mean_repeat_spend_cny(st) == pytest.approx(17.505)


def test_apply_returns_the_same_state_object_and_copy_is_independent() -> None:
    st, _ = run([bal(at(0), "1000")])
    snapshot = st.copy()
    o = apply(st, bal(at(1), "2000"), RULES)
    assert o.state is st
    assert snapshot.accounts["acc1"].balance == "1000"
    assert isinstance(snapshot, CustomerState) and snapshot != st


def test_dedup_set_is_bounded_by_count(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.state.helpers import rules_with

    rules = rules_with(tmp_path, "[dedup]\nsize = 3\n")
    first = prof(at(0), event_id="first")
    st, _ = run([first] + [prof(at(0, h)) for h in range(1, 4)], rules=rules)
    assert len(st.seen) == 3
    assert apply(st, first, rules).status == "applied"  # forgotten after 3 newer ids


def test_dedup_set_is_bounded_by_event_time() -> None:
    e = prof(at(0), event_id="old")
    st, _ = run([e, prof(at(RULES.dedup_days + 1))])
    assert len(st.seen) == 1
    st2, _ = run([prof(at(0), event_id="x"), prof(at(RULES.dedup_days))])
    assert apply(st2, prof(at(0), event_id="x"), RULES).status == "duplicate"
