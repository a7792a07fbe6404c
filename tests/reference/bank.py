"""A randomized bank: a few hundred customers over months of event time, as the JSON
documents that go on the input topics, in an order the worker could apply them.

Built to cross every line the reference decides on: customers sitting on and around
each tier floor and downgrade threshold (exact boundary balances included), crashes
and jumps of their balances, large debits, loans (big, and excluded from AUM), several
currencies, transactions with and without ``balance_after`` (overdrafts too), young
branch-and-ATM customers (digital banking), SME customers, consent given and
withdrawn. And the disorder of real feeds: balance snapshots arriving days late,
redeliveries, two snapshots of one account at the same millisecond, transactions more
than 90 days late, redeliveries from beyond the dedup memory (applied again, as the
rules say), and events in a currency the rules do not know. Seeded: the same
seed gives the same bank.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

__all__ = ["T0_MS", "bank", "ts_text"]

T0_MS = 1767196800000  # 2026-01-01T00:00:00+08:00
DAY_MS = 86_400_000
_CURRENCIES = ["CNY"] * 14 + ["USD"] * 3 + ["HKD"] * 2 + ["JPY"]
_RATES = {"CNY": 1.0, "USD": 7.10, "HKD": 0.91, "JPY": 0.047}
_LEVELS = {  # CNY ranges of a customer's starting assets
    "mass": (0, 480_000),
    "affluent_edge": (440_000, 560_000),
    "hnw_edge": (880_000, 1_150_000),
    "private": (5_200_000, 7_000_000),
    "rich": (1_500_000, 5_000_000),
}
_EDGES = [
    "500000.00", "499999.99", "450000.00", "449999.99", "450000.01", "1000000.00",
    "999999.99", "900000.00", "899999.99", "6000000.00", "5400000.00", "5399999.99",
]  # fmt: skip
_TX_TYPES = [
    "deposit", "deposit", "withdrawal", "withdrawal", "card_payment", "card_payment",
    "transfer_out", "transfer_in", "fee", "interest", "investment_buy", "investment_sell",
    "loan_repayment",
]  # fmt: skip
_CHANNELS = ["mobile", "online", "branch", "atm", "pos", "call_center"]


def ts_text(ms: int, rnd: random.Random) -> str:
    """RFC 3339 in UTC or at +08:00, with or without milliseconds."""
    offset = rnd.choice([0, 480, 480, -300])
    local = datetime(1970, 1, 1) + timedelta(milliseconds=ms, minutes=offset)
    frac = f".{ms % 1000:03d}" if rnd.random() < 0.7 or ms % 1000 else ""
    sign = "+" if offset > 0 else "-"
    off = "Z" if offset == 0 else f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    return f"{local:%Y-%m-%dT%H:%M:%S}{frac}{off}"


def _money(value: float) -> str:
    return f"{max(value, 0.0):.2f}"


class _Customer:
    def __init__(self, cid: str, rnd: random.Random, days: int) -> None:
        self.cid = cid
        self.rnd = rnd
        self.days = days
        self.n = 0
        self.events: list[tuple[int, str, dict[str, Any]]] = []  # (ts, topic, doc)
        level = rnd.choice(list(_LEVELS))
        lo, hi = _LEVELS[level]
        self.single = rnd.random() < 0.15  # one CNY deposit account: exact edges work
        if self.single:
            self.accounts = {"D0": ["deposit", "CNY", rnd.uniform(lo, hi)]}
        else:
            self.accounts = {}
            for i in range(rnd.randint(1, 4)):
                product = rnd.choice(["deposit", "deposit", "wealth", "fund", "insurance"])
                ccy = rnd.choice(_CURRENCIES)
                self.accounts[f"A{i}"] = [product, ccy, rnd.uniform(lo, hi) / _RATES[ccy] / 2]
            if rnd.random() < 0.3:
                self.accounts["L0"] = ["loan", "CNY", rnd.uniform(100_000, 3_000_000)]
        self.offline = rnd.random() < 0.25  # banks at branches and ATMs
        self.young = rnd.random() < 0.3
        self.segment = "sme" if rnd.random() < 0.2 else "retail"

    def eid(self, kind: str) -> str:
        self.n += 1
        return f"{self.cid}-{kind}{self.n}"

    def add(self, ts: int, topic: str, doc: dict[str, Any]) -> None:
        doc = {"event_id": self.eid(topic[:2]), "customer_id": self.cid,
               "ts": ts_text(ts, self.rnd), **doc}  # fmt: skip
        self.events.append((ts, topic, doc))

    def build(self) -> list[tuple[str, dict[str, Any]]]:
        rnd = self.rnd
        start = rnd.randint(0, 20)
        at = T0_MS + start * DAY_MS + rnd.randint(0, DAY_MS - 1)
        self._profile(at, rnd.random() < 0.7)
        for account, (product, ccy, amount) in self.accounts.items():
            self._snapshot(at + rnd.randint(1, 3_600_000), account, product, ccy, amount)
        for day in range(start + 1, self.days):
            base = T0_MS + day * DAY_MS
            if rnd.random() < 0.35:
                self._balance_day(base)
            for _ in range(rnd.choice([0, 0, 1, 1, 2, 3])):
                self._transaction(base + rnd.randint(0, DAY_MS - 1))
            if rnd.random() < 0.02:
                self._profile(base + rnd.randint(0, DAY_MS - 1), rnd.random() < 0.5)
            if rnd.random() < 0.01:
                ts = base + rnd.randint(0, DAY_MS - 1)
                self.add(ts, "risk-assessments", {"score": rnd.randint(0, 100),
                         "investment_experience_years": rnd.choice([0, 0.5, 3, 10])})  # fmt: skip
            if rnd.random() < 0.01:
                self.add(base, "contacts", {"channel": "phone", "outcome": "reached"})
        return self._disorder()

    def _profile(self, ts: int, consent: bool) -> None:
        rnd = self.rnd
        year = rnd.randint(1998, 2007) if self.young else rnd.randint(1940, 1995)
        birth = f"{year}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
        if rnd.random() < 0.1:
            birth = None
        self.add(ts, "customer-profiles", {"segment": self.segment, "marketing_consent": consent,
                 "birth_date": birth})  # fmt: skip

    def _snapshot(self, ts: int, account: str, product: str, ccy: str, amount: float | str) -> None:
        balance = amount if isinstance(amount, str) else _money(amount)
        self.add(ts, "balances", {"account_id": account, "product": product,
                 "balance": balance, "currency": ccy})  # fmt: skip

    def _balance_day(self, base: int) -> None:
        rnd = self.rnd
        account = rnd.choice(list(self.accounts))
        product, ccy, amount = self.accounts[account]
        roll = rnd.random()
        if self.single and roll < 0.25:
            value: float | str = rnd.choice(_EDGES)
            self.accounts[account][2] = float(value)
        else:
            if roll < 0.05:
                amount *= rnd.uniform(0.2, 0.6)  # a crash
            elif roll < 0.09:
                amount *= rnd.uniform(1.5, 3.0)  # a windfall
            else:
                amount *= rnd.uniform(0.92, 1.08)
            self.accounts[account][2] = amount
            value = amount
        ts = base + rnd.randint(0, DAY_MS - 1)
        self._snapshot(ts, account, product, ccy, value)
        if rnd.random() < 0.03:  # another snapshot of the account, same millisecond
            self._snapshot(ts, account, product, ccy, amount * rnd.uniform(0.5, 1.5))

    def _transaction(self, ts: int) -> None:
        rnd = self.rnd
        account = rnd.choice(list(self.accounts))
        product, ccy, balance = self.accounts[account]
        kind = "loan_repayment" if product == "loan" else rnd.choice(_TX_TYPES)
        roll = rnd.random()
        aum = sum(b * _RATES[c] for p, c, b in self.accounts.values() if p != "loan")
        if roll < 0.05 and aum > 0:
            amount = aum * rnd.uniform(0.3, 0.8) / _RATES[ccy]  # maybe a large outflow
        elif roll < 0.08:
            amount = rnd.uniform(400_000, 900_000) / _RATES[ccy]
        else:
            amount = rnd.uniform(10, 8_000)
        amount = max(amount, 0.01)
        if self.offline:
            channel = rnd.choice(["branch", "atm", "branch", "atm", "mobile"])
        else:
            channel = rnd.choice(_CHANNELS)
        doc: dict[str, Any] = {"account_id": account, "type": kind, "amount": _money(amount),
                               "currency": "XAU" if rnd.random() < 0.005 else ccy,
                               "channel": channel}  # fmt: skip
        if rnd.random() < 0.4:
            sign = 1 if kind in ("deposit", "transfer_in", "interest", "investment_sell") else -1
            balance = balance + sign * amount
            self.accounts[account][2] = balance
            after = f"{balance:.2f}" if balance >= 0 or rnd.random() < 0.3 else "0.00"
            doc["balance_after"] = after
        if kind == "investment_buy" and rnd.random() < 0.7:
            doc["product_risk"] = rnd.choice(["R1", "R2", "R3", "R4", "R5"])
        self.add(ts, "transactions", doc)

    def _disorder(self) -> list[tuple[str, dict[str, Any]]]:
        """Event-time order, then the disorder of real feeds."""
        rnd = self.rnd
        self.events.sort(key=lambda e: e[0])
        items = [(topic, doc) for _, topic, doc in self.events]
        out: list[tuple[str, dict[str, Any]]] = []
        held: list[tuple[int, tuple[str, dict[str, Any]]]] = []  # (release at, item)
        for i, item in enumerate(items):
            if item[0] == "balances" and rnd.random() < 0.08:
                held.append((i + rnd.randint(1, 12), item))  # arrives some events late
            else:
                out.append(item)
            for rel in [h for h in held if h[0] <= i]:
                held.remove(rel)
                out.append(rel[1])
            if rnd.random() < 0.03:  # a redelivery of something recent
                out.append(rnd.choice(out[-20:]))
            elif rnd.random() < 0.004:  # one from weeks ago: beyond the dedup memory
                out.append(rnd.choice(out[:-60] or out))
        out.extend(item for _, item in held)
        # transactions more than 90 days late (the window), with and without a balance
        for _ in range(rnd.choice([0, 0, 0, 1, 2])):
            if len(out) < 10:
                break
            at = rnd.randint(len(out) // 2, len(out))
            ts = T0_MS + rnd.randint(0, 20) * DAY_MS
            doc = {"event_id": self.eid("late"), "customer_id": self.cid, "ts": ts_text(ts, rnd),
                   "account_id": rnd.choice(list(self.accounts)), "type": "withdrawal",
                   "amount": "100.00", "currency": "CNY", "channel": "mobile"}  # fmt: skip
            if rnd.random() < 0.5:  # on an account not seen since: its balance is newer
                doc["balance_after"] = "12345.67"
                doc["account_id"] = f"OLD{rnd.randint(0, 3)}"
            out.insert(at, ("transactions", doc))
        return out


def bank(seed: int, customers: int = 300, days: int = 150) -> list[tuple[str, dict[str, Any]]]:
    """The bank's input, customers interleaved at random (each one's order kept)."""
    rnd = random.Random(seed)
    queues = [
        _Customer(f"C{i:04d}", random.Random(rnd.random()), days).build() for i in range(customers)
    ]
    out: list[tuple[str, dict[str, Any]]] = []
    live = [q for q in queues if q]
    positions = [0] * len(live)
    while live:
        k = rnd.randrange(len(live))
        q = live[k]
        out.append(q[positions[k]])
        positions[k] += 1
        if positions[k] == len(q):
            live.pop(k)
            positions.pop(k)
    return out
