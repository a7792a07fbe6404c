"""Contribution (贡献度), CLV in profit terms and the flow ledger, on customers worked
out by hand (docs/value-models.md, "Contribution", shows the same worked example).

The numbers in the assertions were computed on paper from the documented formulas and
the default rates (deposit NIM 1.50%, wealth fee 0.40%, loan spread 1.80%, card
interchange 0.35%, fee postings in full, no per-transaction fees); the core must land
on them exactly.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.contribution import (
    LEDGER_MONTHS,
    balance_income,
    clv_profit,
    contribution_fen,
    month_of,
    monthly_inflow_fen,
    sme_turnover_fen,
    transaction_income_fen,
)
from state.customer import NO_DAY, CustomerState
from state.profile import profile_fields
from tests.state.helpers import RULES, at, bal, prof, rules_with, run, tx


def worked_example() -> list[object]:
    """The customer of docs/value-models.md: a deposit, a fund and a mortgage; card
    spending, a salary and fees in January and February 2026; today is 10 March."""
    return [
        prof(at(0, 9)),
        bal(at(0, 9), "200000.00", account="D1", product="deposit"),
        bal(at(0, 9), "300000.00", account="F1", product="fund"),
        bal(at(0, 9), "500000.00", account="L1", product="loan"),
        tx(at(4), "4000.00", type="card_payment", channel="pos", account="D1"),  # 01-05
        tx(at(9), "30000.00", type="deposit", channel="online", account="D1"),  # salary
        tx(at(19), "6000.00", type="card_payment", channel="mobile", account="D1"),
        tx(at(24), "50.00", type="fee", channel="online", account="D1"),
        tx(at(33), "8000.00", type="card_payment", channel="pos", account="D1"),  # 02-03
        tx(at(40), "30000.00", type="deposit", channel="online", account="D1"),
        tx(at(45), "5000.00", type="transfer_out", channel="mobile", account="D1"),
        tx(at(55), "25.00", type="fee", channel="online", account="D1"),
        tx(at(68), "333.33", type="card_payment", channel="pos", account="D1"),  # 03-10
    ]


def test_the_worked_example_by_hand() -> None:
    state, _ = run(worked_example())
    # balances: 200,000 x 1.50% + 300,000 x 0.40% + 500,000 x 1.80%
    #         = 3,000.00 + 1,200.00 + 9,000.00 = 13,200.00 CNY a year
    assert balance_income(state, RULES) == 1_320_000
    # January: card 4,000 + 6,000 at 0.35% = 35.00, fee 50.00 -> 85.00
    # February: card 8,000 at 0.35% = 28.00, fee 25.00 -> 53.00
    # March is not complete; months before January unknown: N = 2
    # transactions: (85.00 + 53.00) x 12 / 2 = 828.00 a year
    # contribution: 13,200.00 + 828.00 = 14,028.00
    assert contribution_fen(state, RULES) == 1_402_800
    # monthly inflow over the last 3 complete months known (January, February)
    assert monthly_inflow_fen(state, RULES) == 3_000_000
    assert sme_turnover_fen(state, RULES) is None  # retail
    fields = profile_fields(state, RULES)
    assert fields["contribution_cny"] == "14028.00"
    # spend and inflow over March and the two months before
    assert fields["spend_cny"] == "23333.33"  # 4,000 + 6,000 + 8,000 + 5,000 + 333.33
    assert fields["inflow_cny"] == "60000.00"
    # CLV in profit terms: 14,028.00 x 90 / 365 a quarter, weighted by P(alive) and
    # discounted over 4 quarters at 3%. x = 6 repeat days, t_x = T = 64 days:
    # P(alive) = 1 / (1 + 0.6 / (12 + 6 - 1)) = 0.96590909...
    p_alive = 1 / (1 + 0.6 / 17)
    annuity = sum(1.03**-k for k in range(1, 5))  # 3.71709840...
    want = 14028.00 * 90 / 365 * p_alive * annuity  # 3,458.96 x 0.9659 x 3.7171
    assert fields["p_alive"] == f"{p_alive:.4f}" == "0.9659"
    assert fields["clv_profit_cny"] == f"{want:.2f}" == "12418.97"
    assert clv_profit(state, RULES) == pytest.approx(want, rel=1e-12)


def test_march_counts_once_it_is_complete() -> None:
    """On 1 April March is a complete month: its income (the 333.33 card payment:
    1.17 after half-even rounding of 1.166655) joins, and N = 3."""
    state, _ = run([*worked_example(), tx(at(90), "1.00", type="deposit", account="D1")])
    # (85.00 + 53.00 + 1.17) x 12 / 3 = 556.68; 13,200.00 + 556.68
    assert contribution_fen(state, RULES) == 1_375_668
    # inflow of January, February, March (1.00 arrived in April): 60,000 / 3
    assert monthly_inflow_fen(state, RULES) == 2_000_000


@pytest.mark.parametrize(
    ("amount", "fen"),
    [
        ("333.33", 117),  # 116.6655 fen
        ("10.00", 4),  # 3.5 fen: half to even, up
        ("30.00", 10),  # 10.5 fen: half to even, down
        ("0.01", 0),
        ("100.00", 35),
    ],
)
def test_card_interchange_is_rounded_half_even_per_payment(amount: str, fen: int) -> None:
    amount_fen = int(Fraction(amount) * 100)
    assert transaction_income_fen("card_payment", amount_fen, RULES) == fen


def test_fee_postings_count_in_full_and_fees_per_type_add(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert transaction_income_fen("fee", 2500, RULES) == 2500
    assert transaction_income_fen("withdrawal", 50_000, RULES) == 0
    rules = rules_with(tmp_path, '[value.fees]\nwithdrawal = "2.00"\nfee = "0.10"\n')
    assert transaction_income_fen("withdrawal", 50_000, rules) == 200
    assert transaction_income_fen("fee", 2500, rules) == 2510


def test_overdrafts_and_loans_of_either_sign_earn_the_loan_spread() -> None:
    state, _ = run(
        [
            bal(at(0), "-1000.00", account="D1", product="deposit"),
            bal(at(0), "-200000.00", account="L1", product="loan"),
            bal(at(0), "50000.00", account="W1", product="wealth"),
            bal(at(0), "-5.00", account="W2", product="wealth"),  # no fee on a negative
        ]
    )
    # (1,000 + 200,000) x 1.80% + 50,000 x 0.40% = 3,618.00 + 200.00
    assert contribution_fen(state, RULES) == 381_800


def test_an_account_seen_only_on_transactions_earns_the_deposit_margin() -> None:
    state, _ = run([tx(at(0), "10.00", type="deposit", balance_after="1000.00", account="X")])
    assert state.accounts["X"].product == ""
    assert contribution_fen(state, RULES) == 1500  # 1,000.00 x 1.50% = 15.00


def test_rates_come_from_the_rules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = rules_with(
        tmp_path,
        '[value]\ndeposit_nim = "0.02"\nwealth_fee_rate = "0.01"\nloan_spread = "0.03"\n'
        'card_interchange = "0.0045"\n',
    )
    state, _ = run(worked_example(), rules=rules)
    # 200,000 x 2% + 300,000 x 1% + 500,000 x 3% = 22,000.00 from balances
    # card at 0.45%: January 18.00 + 27.00, February 36.00; with the fees
    # (18 + 27 + 50 + 36 + 25) x 12 / 2 = 936.00
    assert contribution_fen(state, rules) == 2_293_600


def test_a_sme_customers_turnover_is_annual_inflow() -> None:
    events = [
        prof(at(0), segment="sme"),
        bal(at(0), "100000.00", account="D1"),
        tx(at(3), "120000.00", type="transfer_in", account="D1"),  # January
        tx(at(35), "80000.00", type="transfer_in", account="D1"),  # February
        tx(at(36), "1000.00", type="deposit", account="D1"),
        tx(at(40), "500.00", type="investment_sell", account="D1"),  # not inflow
        tx(at(62), "9.00", type="card_payment", account="D1"),  # March: today
    ]
    state, _ = run(events)
    # (120,000 + 81,000) x 12 / 2 complete months = 1,206,000.00
    assert sme_turnover_fen(state, RULES) == 120_600_000
    assert monthly_inflow_fen(state, RULES) == 10_050_000  # 201,000 / 2


def test_a_customer_first_seen_mid_month_counts_from_the_next_month() -> None:
    events = [
        bal(at(14), "0.00", account="D1"),  # 15 January
        tx(at(20), "100.00", type="fee", account="D1"),
        tx(at(40), "20.00", type="fee", account="D1"),  # February
        tx(at(60), "1.00", type="deposit", account="D1"),  # 2 March
    ]
    state, _ = run(events)
    # January is not known in full: only February counts, N = 1: 20.00 x 12
    assert contribution_fen(state, RULES) == 24_000
    state, _ = run(events[1:2])  # nothing but one fee this month
    assert contribution_fen(state, RULES) == 0 and monthly_inflow_fen(state, RULES) is None


def test_late_transactions_are_not_booked_and_the_ledger_keeps_13_months() -> None:
    events = [bal(at(0), "0.00", account="D1")]
    events += [tx(at(30 * m + 2), "10.00", type="fee", account="D1") for m in range(20)]
    state, _ = run(events)
    assert len(state.ledger) == 4 * LEDGER_MONTHS
    months = state.ledger[::4]
    assert months == list(range(months[-1] - LEDGER_MONTHS + 1, months[-1] + 1))
    # the fees of the 12 complete months before today, 10.00 each, over 12 x 12
    today = months[-1]
    fees = sum(
        1 for m in range(20) if today - 12 <= month_of(RULES.local_day(at(30 * m + 2))) < today
    )
    assert 10 <= fees <= 13
    assert contribution_fen(state, RULES) == fees * 1000
    before = list(state.ledger)
    state, outs = run([tx(at(30), "99.00", type="fee", account="D1")], state)
    assert outs[0].status == "late" and state.ledger == before


def test_a_state_from_before_the_ledger_starts_it_at_its_next_event() -> None:
    state, _ = run(worked_example())
    old = CustomerState.from_bytes(state.to_bytes())
    old.ledger, old.ledger_from = [], NO_DAY  # as a state written before issue 22 loads
    assert contribution_fen(old, RULES) == 1_320_000  # balances only
    state, _ = run([tx(at(69), "1.00", type="fee", account="D1")], old)
    assert state.ledger_from == state.day  # 11 March: April is its first known month
    assert contribution_fen(state, RULES) == 1_320_000
    assert profile_fields(state, RULES)["spend_cny"] == "0.00"


def test_months_are_local_calendar_months() -> None:
    # 2026-01-31 23:30 +08:00 is January; 2026-01-31T16:30Z is 1 February in Shanghai
    assert month_of(RULES.local_day(at(30, 23))) == 2026 * 12
    assert month_of(RULES.local_day(at(31, 0))) == 2026 * 12 + 1


_AMOUNTS = st.decimals(min_value="0.01", max_value="99999.99", places=2)
_TYPES = st.sampled_from(["card_payment", "fee", "deposit", "transfer_in", "withdrawal"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), _TYPES, _AMOUNTS), min_size=1, max_size=40))
def test_booked_income_equals_a_recount_of_the_events(items: list[tuple[int, str, object]]) -> None:
    """The ledger's transaction income over the known complete months equals a plain
    recount of the applied events (the reference does the same at bank scale)."""
    events = [bal(at(0, 0), "0.00", account="D1")]
    events += [tx(at(d), str(a), type=t, account="D1") for d, t, a in sorted(items)]
    state, outs = run(events)
    today = month_of(state.day)
    first = max(today - 12, month_of(state.ledger_from))
    income = 0
    for ev, out in zip(events[1:], outs[1:], strict=True):
        m = month_of(RULES.local_day(ev.ts))
        if out.status == "applied" and first <= m < today:
            income += transaction_income_fen(ev.type, int(ev.amount * 100), RULES)
    n = today - first
    want = round(Fraction(12 * income, n)) if n else 0
    assert contribution_fen(state, RULES) == want
