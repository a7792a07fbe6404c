"""Contribution (贡献度): the bank's estimated annual profit from one customer, and the
money flows behind it and behind the tiers' behaviour criteria.

Why contribution and not AUM alone: a bank allocates service by what a customer
earns it. A 400k depositor with a 2M mortgage and a busy card earns the bank more than
a 600k depositor who never transacts; the 80/20 analysis management runs is on
profit, and the CLV the bank means is the net profit a customer brings over time.

Two parts (docs/value-models.md, "Contribution", works an example through):

* **balances**, a run rate: every account's balance times the annual rate of its
  product -- the net interest margin on deposits, the fee rate on wealth, fund, bond
  and insurance holdings, the loan spread on loans outstanding and on overdrawn
  deposit accounts (``[value]`` in the rules). Read from the accounts the state holds,
  so a rate change or a new balance shows at once.
* **transactions**, booked per calendar month in a small ledger (``state.ledger``):
  each transaction's income for the bank -- the card interchange on a card payment,
  a ``fee`` posting in full, the rules' fee per transaction of its type -- and,
  for the behaviour criteria and RFM, the customer's inflow and spending. The annual
  figure is the income of the complete months of the last year the bank has known
  the customer, averaged and times 12. One transaction updates one month (O(1), no
  history is re-read), and the ledger keeps the current month and the 12 before.

Money is exact: fen are integers, each transaction's income is rounded half-even to
the fen once, and the annual figures are exact fractions rounded half-even to the fen
at the end. ``clv_profit`` is a statistical estimate (P(alive), discounting), so a float.
"""

from __future__ import annotations

import math
from datetime import date
from fractions import Fraction

from state.customer import NO_DAY, CustomerState
from state.lifetime import customer_p_alive
from state.limits import LEDGER_ROWS, MAX_FEN
from state.rules import Rules

__all__ = [
    "INFLOW_TYPES",
    "LEDGER_MONTHS",
    "SPEND_TYPES",
    "balance_income",
    "book",
    "clv_profit",
    "contribution_fen",
    "month_of",
    "month_start",
    "monthly_inflow_fen",
    "recent_flows_fen",
    "sme_turnover_fen",
    "start_ledger",
    "transaction_income_fen",
]

#: Money the customer brings in: cash and cheques paid in, salary and other transfers.
INFLOW_TYPES = frozenset({"deposit", "transfer_in"})
#: Money the customer spends or sends away (investment moves, loan repayments, the
#: bank's own fees and interest are neither).
SPEND_TYPES = frozenset({"withdrawal", "transfer_out", "card_payment"})
#: Months the ledger keeps: the current one and the 12 before it.
LEDGER_MONTHS = LEDGER_ROWS
_STRIDE = 4  # a ledger row: month, inflow fen, spend fen, income fen
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MEMO_MAX = 100_000


# --------------------------------------------------------------------------- calendar

_MONTH_OF: dict[int, int] = {}
_MONTH_START: dict[int, int] = {}


def month_of(day: int) -> int:
    """The calendar month of a local day, as ``year * 12 + month - 1`` (memoised)."""
    m = _MONTH_OF.get(day)
    if m is None:
        d = date.fromordinal(day + _EPOCH_ORDINAL)
        m = d.year * 12 + d.month - 1
        if len(_MONTH_OF) >= _MEMO_MAX:
            _MONTH_OF.clear()
        _MONTH_OF[day] = m
    return m


def month_start(month: int) -> int:
    """The local day number of the 1st of ``month`` (memoised)."""
    day = _MONTH_START.get(month)
    if day is None:
        day = date(month // 12, month % 12 + 1, 1).toordinal() - _EPOCH_ORDINAL
        if len(_MONTH_START) >= _MEMO_MAX:
            _MONTH_START.clear()
        _MONTH_START[month] = day
    return day


# --------------------------------------------------------------------------- booking


def transaction_income_fen(tx_type: str, amount_fen: int, rules: Rules) -> int:
    """What one transaction earns the bank, in fen: the fee per transaction of its type,
    plus the interchange on a card payment (rounded half-even) or a fee posting's
    amount in full."""
    income = rules.transaction_fees_fen[tx_type]
    if tx_type == "card_payment":
        num, den = _interchange(rules)
        q, r = divmod(amount_fen * num, den)  # amounts are > 0: half-even by hand
        income += q + (1 if 2 * r > den or (2 * r == den and q & 1) else 0)
    elif tx_type == "fee":
        income += amount_fen
    return income


def start_ledger(state: CustomerState, ev_day: int) -> None:
    """The ledger holds every transaction from the customer's first event on; a state
    written before it existed starts it at its next event (its months before are
    unknown, not empty)."""
    if state.ledger_from == NO_DAY:
        state.ledger_from = max(ev_day, state.day)


def book(state: CustomerState, day: int, tx_type: str, amount_fen: int, rules: Rules) -> None:
    """Record one applied (not late) transaction of ``day`` in its month. Sums saturate
    at the state's 64-bit range (a month of more than 92 quadrillion CNY)."""
    inflow = amount_fen if tx_type in INFLOW_TYPES else 0
    spend = amount_fen if tx_type in SPEND_TYPES else 0
    income = transaction_income_fen(tx_type, amount_fen, rules)
    if not (inflow or spend or income):
        return
    month = month_of(day)
    oldest = month_of(state.day) - (LEDGER_MONTHS - 1)
    if month < oldest:
        return  # older than any figure reads (a window longer than a year)
    led = state.ledger
    gone = 0
    while gone < len(led) and led[gone] < oldest:
        gone += _STRIDE
    if gone:
        del led[:gone]
    j = len(led) - _STRIDE
    while j >= 0 and led[j] > month:
        j -= _STRIDE
    if j >= 0 and led[j] == month:
        led[j + 1] = min(MAX_FEN, led[j + 1] + inflow)
        led[j + 2] = min(MAX_FEN, led[j + 2] + spend)
        led[j + 3] = min(MAX_FEN, led[j + 3] + income)
    else:
        led[j + _STRIDE : j + _STRIDE] = (month, inflow, spend, income)


# --------------------------------------------------------------------------- reading


def _known(state: CustomerState, month: int) -> bool:
    """Whether the ledger holds all of ``month`` (it started on or before its 1st)."""
    return state.ledger_from != NO_DAY and month_start(month) >= state.ledger_from


def _complete_months(state: CustomerState, n: int) -> tuple[int, int, int, int]:
    """Over the last ``n`` complete calendar months before the customer's today that
    the ledger knows: (how many, inflow, spend, income) in fen."""
    if state.ledger_from == NO_DAY or state.version == 0:
        return 0, 0, 0, 0
    today = month_of(state.day)
    first = today - n
    known = sum(1 for m in range(first, today) if _known(state, m))
    inflow = spend = income = 0
    led = state.ledger
    for i in range(0, len(led), _STRIDE):
        m = led[i]
        if first <= m < today and _known(state, m):
            inflow += led[i + 1]
            spend += led[i + 2]
            income += led[i + 3]
    return known, inflow, spend, income


def recent_flows_fen(state: CustomerState, day: int | None = None) -> tuple[int, int]:
    """(inflow, spend) in fen over the calendar month of ``day`` (default: the
    customer's today) and the two before: the RFM figures ``inflow_cny`` and
    ``spend_cny``."""
    if state.version == 0:
        return 0, 0
    last = month_of(state.day if day is None else day)
    first = last - 2
    inflow = spend = 0
    led = state.ledger
    for i in range(0, len(led), _STRIDE):
        if first <= led[i] <= last:
            inflow += led[i + 1]
            spend += led[i + 2]
    return inflow, spend


def monthly_inflow_fen(state: CustomerState, rules: Rules) -> int | None:
    """Average inflow per month over the last ``tiers.inflow_months`` complete months
    the ledger knows (half-even to the fen); None before the first complete month."""
    n, inflow, _spend, _income = _complete_months(state, rules.inflow_months)
    return round(Fraction(inflow, n)) if n else None


def sme_turnover_fen(state: CustomerState, rules: Rules) -> int | None:
    """An SME customer's business turnover: annual inflow, the known complete months of
    the last 12 averaged and times 12. None for retail customers or before a month."""
    if state.segment != "sme":
        return None
    n, inflow, _spend, _income = _complete_months(state, LEDGER_MONTHS - 1)
    return round(Fraction(12 * inflow, n)) if n else None


#: id(rules) -> (the rules, (deposit, wealth, loan numerators over D, D, card
#: interchange as num/den)): the annual rates as integers, built once per rules (the
#: rules are immutable and held here, so an id cannot be reused while cached).
_Rates = tuple[int, int, int, int, tuple[int, int]]
_RATES: dict[int, tuple[Rules, _Rates]] = {}
_INVESTMENTS = frozenset({"wealth", "fund", "bond", "insurance"})


def _rates(rules: Rules) -> _Rates:
    hit = _RATES.get(id(rules))
    if hit is not None and hit[0] is rules:
        return hit[1]
    fracs = [Fraction(r) for r in (rules.deposit_nim, rules.wealth_fee_rate, rules.loan_spread)]
    den = math.lcm(*(f.denominator for f in fracs))
    nim, wealth, spread = (f.numerator * (den // f.denominator) for f in fracs)
    rates = (nim, wealth, spread, den, rules.card_interchange.as_integer_ratio())
    if len(_RATES) >= 64:
        _RATES.clear()
    _RATES[id(rules)] = (rules, rates)
    return rates


def _interchange(rules: Rules) -> tuple[int, int]:
    return _rates(rules)[4]


def _half_even(num: int, den: int) -> int:
    """num / den rounded half to even (den > 0), in integers."""
    q, r = divmod(num, den)
    return q + (1 if 2 * r > den or (2 * r == den and q & 1) else 0)


def _balance_numerator(state: CustomerState, rules: Rules) -> tuple[int, int]:
    """Annual income from the balances held now, in fen, as (numerator, denominator)."""
    deposits = investments = credit = 0
    for a in state.accounts.values():
        fen, product = a.fen, a.product
        if product == "loan":
            credit += fen if fen >= 0 else -fen
        elif product in _INVESTMENTS:
            if fen > 0:
                investments += fen
        elif fen >= 0:
            deposits += fen
        else:
            credit -= fen
    nim, wealth, spread, den, _card = _rates(rules)
    return nim * deposits + wealth * investments + spread * credit, den


def balance_income(state: CustomerState, rules: Rules) -> Fraction:
    """Annual income from the balances held now, in fen (exact): deposits (and accounts
    only seen on transactions) at the net interest margin, investment products at the
    wealth fee rate, loans outstanding (either sign) and overdrawn deposits at the loan
    spread."""
    return Fraction(*_balance_numerator(state, rules))


def transaction_income(state: CustomerState) -> Fraction:
    """Annual income from transactions, in fen (exact): the income of the known
    complete months of the last 12, averaged and times 12 (0 before the first)."""
    n, _inflow, _spend, income = _complete_months(state, LEDGER_MONTHS - 1)
    return Fraction(12 * income, n) if n else Fraction(0)


def contribution_fen(state: CustomerState, rules: Rules) -> int:
    """The estimated annual contribution in fen: balance and transaction income,
    rounded half-even to the fen once (integer arithmetic: it runs for every profile)."""
    num, den = _balance_numerator(state, rules)
    n, _inflow, _spend, income = _complete_months(state, LEDGER_MONTHS - 1)
    if n:
        num, den = num * n + 12 * income * den, den * n
    return _half_even(num, den)


def clv_profit(
    state: CustomerState,
    rules: Rules,
    contribution: int | None = None,
    p_alive: float | None = None,
) -> float:
    """CLV in profit terms, CNY: the contribution per CLV period (``value.period_days``
    of 365) over ``value.horizon_periods`` periods, weighted by P(alive) now (1 for a
    customer without a transaction: BG/NBD lets nobody drop out before a repeat) and
    discounted per period at ``value.discount_rate``. ``contribution`` (fen) and
    ``p_alive``, when the caller has them, save computing them again."""
    fen = contribution_fen(state, rules) if contribution is None else contribution
    per_period = fen / 100 * rules.clv_period_days / 365
    pa = customer_p_alive(state, rules) if p_alive is None else p_alive
    alive = 1.0 if pa is None else pa
    growth = 1.0 + rules.clv_discount_rate
    annuity = sum(growth**-k for k in range(1, rules.clv_horizon_periods + 1))
    return per_period * alive * annuity
