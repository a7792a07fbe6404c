"""Per-customer state and its compact, versioned serialization.

Why hand-written serialization: the state is written to the changelog/RocksDB after
every batch for every touched customer, so it must be small (target < 1 KiB for a
typical customer) and cheap to encode; and it must outlive code changes, so the
encoding carries a format version ``v``, every field added later has a default, and a
state from a *future* format is refused rather than half-read. Keys are one or two
letters and fields equal to their default are left out.

Format history:
  v1  dedup ids stored as a plain list of event_id strings; last-writer tie-breaks as
      event_id strings; window buckets as [day, sum, dense channel counts] with
      absolute days; AUM samples "h" as
      [day, high, close] with absolute days; no alert cooldowns ("la"), no churn-check
      day ("cc").
  v2  dedup ids stored as base64 of n 8-byte BLAKE2b hashes then n 2-byte ages in days;
      AUM samples as [day delta, close(, high)]; tie-breaks as event_key ints; window
      buckets as [day delta, sum, count << 3 | channel, ...].
  v3  relationship care: timer watermark "tm", first day seen "fd", last counted
      contact "ct", campaigns already decided "cp". A v1/v2 state loads with the
      watermark at its newest event (nothing before it fires) and its first day at
      its first transaction day (else its "today").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from decimal import Decimal
from typing import Any

import orjson

from state.windows import DailyWindows

FORMAT_VERSION = 3
NO_DAY = -(2**31)  # "no day yet" (the state has not seen an event)
_AGE_MAX = 0xFFFF


def event_key(event_id: str) -> int:
    """64-bit BLAKE2b of an event_id: what the dedup set stores (fixed size per entry).

    A stable hash (not Python's salted ``hash``) so the set survives restarts; at 64 bits
    a false "duplicate" among a customer's last few hundred ids has odds ~1e-17.
    """
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


class Account:
    """Latest known balance of one account (last writer by event time wins)."""

    __slots__ = ("balance", "currency", "fen", "product", "tie", "ts")

    def __init__(
        self, ts: int, tie: int, balance: Decimal, currency: str, product: str, fen: int
    ) -> None:
        self.ts = ts  # event time of the event that set the balance
        self.tie = tie  # event_key of its event_id: breaks ties between equal ts
        self.balance = balance  # in ``currency``
        self.currency = currency
        self.product = product  # one of PRODUCTS, or "" if only seen on transactions
        self.fen = fen  # balance in CNY fen at the FX rate of the time it was set

    def dump(self) -> list[Any]:
        return [self.ts, self.tie, str(self.balance), self.currency, self.product, self.fen]

    @classmethod
    def load(cls, row: list[Any]) -> Account:
        return cls(int(row[0]), _tie(row[1]), Decimal(row[2]), str(row[3]), str(row[4]), row[5])


class CustomerState:
    """Everything the core remembers about one customer (mutable; see core.apply)."""

    __slots__ = (
        "accounts",
        "assess_tie",
        "assessed_ts",
        "aum_days",
        "aum_fen",
        "birth_date",
        "campaigns_done",
        "churn_day",
        "consent",
        "customer_id",
        "day",
        "first_day",
        "greeted_year",
        "last_alert",
        "last_contact_ts",
        "last_offer",
        "late_events",
        "profile_tie",
        "profile_ts",
        "risk_experience",
        "risk_score",
        "risk_type",
        "seen",
        "segment",
        "tier",
        "tier_since",
        "timer_mark",
        "tx_days",
        "tx_first_day",
        "tx_first_fen",
        "tx_last_day",
        "tx_total_fen",
        "updated_at",
        "version",
        "windows",
    )

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        #: applied-event counter: orders Redis profile writes (older never overwrites newer)
        self.version = 0
        #: event time (ms) of the newest applied event; 0 before the first
        self.updated_at = 0
        #: local day number of ``updated_at``: the customer's event-time "today"
        self.day = NO_DAY
        self.accounts: dict[str, Account] = {}
        self.aum_fen = 0  # derived: sum of non-loan accounts' fen
        self.windows = DailyWindows()
        self.late_events = 0
        #: dedup: event key -> local day at which it was applied (insertion order = FIFO)
        self.seen: dict[int, int] = {}
        # BG/NBD / Gamma-Gamma sufficient statistics over distinct transaction days
        self.tx_first_day = NO_DAY
        self.tx_last_day = NO_DAY
        self.tx_days = 0  # distinct days with a transaction; x = tx_days - 1
        self.tx_total_fen = 0  # all-time sum of counted transactions
        self.tx_first_fen = 0  # sum on the first day (not a repeat purchase)
        #: AUM samples: day -> [highest fen that day, last fen that day]
        self.aum_days: dict[int, list[int]] = {}
        # profile (last writer by event time wins)
        self.segment: str | None = None
        self.consent = False
        self.birth_date: str | None = None
        self.profile_ts = -1
        self.profile_tie = 0
        # risk assessment (last writer by event time wins)
        self.risk_score: int | None = None
        self.risk_experience = 0.0
        self.risk_type: str | None = None
        self.assessed_ts = -1
        self.assess_tie = 0
        # tier, offers, alerts
        self.tier: str | None = None
        self.tier_since = 0
        self.last_offer: dict[str, int] = {}
        self.last_alert: dict[str, int] = {}
        self.greeted_year = 0
        self.churn_day = NO_DAY
        # relationship care (state/triggers.py)
        #: timer watermark (ms): every trigger due at or before it has been decided;
        #: -1 until the first applied event (nothing is due before a customer exists)
        self.timer_mark = -1
        #: local day of the first applied event (dormancy of never-transacting customers)
        self.first_day = NO_DAY
        #: event time of the newest contact whose outcome resets the review cadence
        self.last_contact_ts = -1
        #: campaign id -> its start day, for campaigns already decided for this customer
        self.campaigns_done: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers

    def copy(self) -> CustomerState:
        """An independent copy, for callers that need the state before ``apply``."""
        return CustomerState.from_bytes(self.to_bytes())

    def recompute_aum(self) -> None:
        self.aum_fen = sum(a.fen for a in self.accounts.values() if a.product != "loan")

    # ------------------------------------------------------------ serialization

    def to_bytes(self) -> bytes:
        d: dict[str, Any] = {"v": FORMAT_VERSION, "c": self.customer_id, "n": self.version}
        if self.updated_at:
            d["u"] = self.updated_at
        if self.day != NO_DAY:
            d["d"] = self.day
        accounts = self.accounts
        if accounts:
            d["a"] = {k: accounts[k].dump() for k in sorted(accounts)}
        if self.windows.buckets:
            d["w"] = self.windows.dump()
        if self.late_events:
            d["L"] = self.late_events
        if self.seen:
            d["s"] = _dump_seen(self.seen, self.day)
        if self.tx_days:
            d["t"] = [
                self.tx_first_day,
                self.tx_last_day,
                self.tx_days,
                self.tx_total_fen,
                self.tx_first_fen,
            ]
        if self.aum_days:
            d["h"] = _dump_samples(self.aum_days)
        if self.profile_ts >= 0:
            d["p"] = [
                self.segment,
                self.consent,
                self.birth_date,
                self.profile_ts,
                self.profile_tie,
            ]
        if self.assessed_ts >= 0:
            d["r"] = [
                self.risk_score,
                self.risk_experience,
                self.risk_type,
                self.assessed_ts,
                self.assess_tie,
            ]
        if self.tier is not None:
            d["T"] = [self.tier, self.tier_since]
        if self.last_offer:
            d["o"] = _sorted_dict(self.last_offer)
        if self.last_alert:
            d["la"] = _sorted_dict(self.last_alert)
        if self.greeted_year:
            d["g"] = self.greeted_year
        if self.churn_day != NO_DAY:
            d["cc"] = self.churn_day
        if self.timer_mark >= 0:
            d["tm"] = self.timer_mark
        if self.first_day != NO_DAY:
            d["fd"] = self.first_day
        if self.last_contact_ts >= 0:
            d["ct"] = self.last_contact_ts
        if self.campaigns_done:
            d["cp"] = _sorted_dict(self.campaigns_done)
        return orjson.dumps(d)

    @classmethod
    def from_bytes(cls, b: bytes) -> CustomerState:
        """Load any known format version; missing fields take their defaults."""
        try:
            d = orjson.loads(b)
        except orjson.JSONDecodeError as e:
            raise ValueError(f"customer state is not valid JSON: {e}") from None
        if not isinstance(d, dict) or "c" not in d:
            raise ValueError("customer state: not a state object (no customer id)")
        v = d.get("v")
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"customer state: bad format version {v!r}")
        if v > FORMAT_VERSION:
            raise ValueError(
                f"customer state format v{v} is newer than this code (v{FORMAT_VERSION}); "
                "upgrade tierstream instead of reading it"
            )
        # Fields left out of ``b`` keep the defaults __init__ gave them; the ones present
        # are converted in the same order as always (so a corrupt state fails the same way).
        s = cls(str(d["c"]))
        get = d.get
        s.version = int(get("n", 0))
        s.updated_at = int(get("u", 0))
        s.day = int(get("d", NO_DAY))
        if "a" in d:
            s.accounts = {k: Account.load(row) for k, row in d["a"].items()}
            s.recompute_aum()
        if "w" in d:
            s.windows = DailyWindows.load(d["w"], dense=v == 1)
        if "L" in d:
            s.late_events = int(d["L"])
        raw_seen = get("s")
        if isinstance(raw_seen, str):
            s.seen = _load_seen(raw_seen, s.day)
        elif isinstance(raw_seen, list):  # v1: plain event_id strings, applied "today"
            s.seen = {event_key(str(e)): s.day for e in raw_seen}
        if "t" in d:
            (
                s.tx_first_day,
                s.tx_last_day,
                s.tx_days,
                s.tx_total_fen,
                s.tx_first_fen,
            ) = map(int, d["t"])
        if "h" in d:
            s.aum_days = _load_samples(d["h"], v)
        if "p" in d:
            seg, consent, birth, pts, peid = d["p"]
            s.segment, s.consent, s.birth_date = seg, bool(consent), birth
            s.profile_ts, s.profile_tie = int(pts), _tie(peid)
        if "r" in d:
            score, exp, rtype, ats, aeid = d["r"]
            s.risk_score, s.risk_experience, s.risk_type = score, float(exp), rtype
            s.assessed_ts, s.assess_tie = int(ats), _tie(aeid)
        if "T" in d:
            s.tier, s.tier_since = str(d["T"][0]), int(d["T"][1])
        if "o" in d:
            s.last_offer = {str(k): int(x) for k, x in d["o"].items()}
        if "la" in d:
            s.last_alert = {str(k): int(x) for k, x in d["la"].items()}
        if "g" in d:
            s.greeted_year = int(d["g"])
        if "cc" in d:
            s.churn_day = int(d["cc"])
        if v < 3:  # before timers: start them at the newest event, as documented above
            s.timer_mark = s.updated_at if s.version else -1
            s.first_day = s.tx_first_day if s.tx_days else s.day
        else:
            s.timer_mark = int(get("tm", -1))
            s.first_day = int(get("fd", NO_DAY))
        if "ct" in d:
            s.last_contact_ts = int(d["ct"])
        if "cp" in d:
            s.campaigns_done = {str(k): int(x) for k, x in d["cp"].items()}
        return s

    def __repr__(self) -> str:
        return f"CustomerState({self.to_bytes().decode()})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CustomerState):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # mutable


def _sorted_dict(m: dict[str, int]) -> dict[str, int]:
    """``m`` with its keys in sorted order (``m`` itself when it has one key: it is
    only read by orjson.dumps, which writes the same bytes either way)."""
    if len(m) == 1:
        return m
    return {k: m[k] for k in sorted(m)}


def _tie(x: object) -> int:
    """Last-writer tie-break key; v1 stored the event_id itself."""
    return event_key(x) if isinstance(x, str) else int(x)  # type: ignore[call-overload]


def _dump_samples(samples: dict[int, list[int]]) -> list[list[int]]:
    """[[day delta, close(, high if different)], ...] sorted by day (first day absolute)."""
    out: list[list[int]] = []
    prev = 0
    for day in sorted(samples):
        high, close = samples[day]
        out.append([day - prev, close] if high == close else [day - prev, close, high])
        prev = day
    return out


def _load_samples(rows: list[list[int]], version: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    if version == 1:  # v1: [[day, high, close], ...] with absolute days
        for day, high, close in rows:
            out[int(day)] = [int(high), int(close)]
        return out
    day = 0
    for row in rows:
        day += int(row[0])
        close = int(row[1])
        out[day] = [int(row[2]) if len(row) > 2 else close, close]
    return out


_SEEN_STRUCTS: dict[int, struct.Struct] = {}


def _seen_struct(n: int) -> struct.Struct:
    """The layout of a dedup set of ``n`` entries (compiled once per size)."""
    st = _SEEN_STRUCTS.get(n)
    if st is None:
        if len(_SEEN_STRUCTS) >= 1024:
            _SEEN_STRUCTS.clear()
        st = _SEEN_STRUCTS[n] = struct.Struct(f">{n}Q{n}H")
    return st


def _dump_seen(seen: dict[int, int], today: int) -> str:
    """FIFO order kept: n 8-byte keys, then n 2-byte ages (today - day applied)."""
    n = len(seen)
    ages = [today - d for d in seen.values()]
    if ages and (min(ages) < 0 or max(ages) > _AGE_MAX):  # rare: clamp into 0..0xFFFF
        ages = [min(max(a, 0), _AGE_MAX) for a in ages]
    raw = _seen_struct(n).pack(*seen, *ages)
    return binascii.b2a_base64(raw, newline=False).decode("ascii")  # = base64.b64encode


def _load_seen(text: str, today: int) -> dict[int, int]:
    raw = base64.b64decode(text)
    n, rest = divmod(len(raw), 10)
    if rest:
        raise ValueError("customer state: corrupt dedup set")
    vals = _seen_struct(n).unpack(raw)
    return dict(zip(vals[:n], [today - age for age in vals[n:]], strict=True))
