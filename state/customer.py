"""Per-customer state and its compact, versioned serialization.

Why it matters how the state is stored: the state is read, decoded, applied to,
encoded and written for every event of a customer the worker's cache does not hold --
in a bank, nearly every event -- so its encode and decode are on the hot path, and
their cost must not grow with the customer's history. And it must outlive code
changes: the encoding carries a format version, every field added later has a
default, and a state from a *future* format is refused rather than half-read.

Format v4 (MessagePack): the state is a ``msgspec.Struct`` decoded and encoded in C,
as one array whose first element is the version (4) and then the fields in the order
the class declares them. A field added later goes last, with a default: the array of
an older v4 state is simply shorter and its missing fields take their defaults, while
an array longer than this code knows is a newer state and is refused (rather than
read and written back without the fields it does not know). What grew with history is
kept as bytes that decode and encode as they are: the closed window buckets
(state/windows.py) and the dedup set's keys (8 bytes each, FIFO order; their insertion
days run-length encoded). The window totals and the AUM are stored, not recomputed.
Decoding also checks what the types cannot: the dedup keys and days agree, the window
has one total per channel.

Format history:
  v1  JSON. Dedup ids stored as a plain list of event_id strings; last-writer
      tie-breaks as event_id strings; window buckets as [day, sum, dense channel
      counts] with absolute days; AUM samples "h" as [day, high, close] with absolute
      days; no alert cooldowns ("la"), no churn-check day ("cc").
  v2  JSON. Dedup ids stored as base64 of n 8-byte BLAKE2b hashes then n 2-byte ages in
      days; AUM samples as [day delta, close(, high)]; tie-breaks as event_key ints;
      window buckets as [day delta, sum, count << 3 | channel, ...].
  v3  JSON. Relationship care: timer watermark "tm", first day seen "fd", last
      counted contact "ct", campaigns already decided "cp". A v1/v2 state loads with
      the watermark at its newest event (nothing before it fires) and its first day at
      its first transaction day (else its "today").
  v4  MessagePack array (this module's CustomerState, field by field): closed window
      buckets as bytes behind the newest bucket, and the window totals; dedup
      keys as one bytes object with run-length insertion days; AUM samples as a flat
      [day, high, close, ...] list; account balances as their decimal strings.
      2.6 KB -> 1.2 KB for a customer with 90 days of history, and decode/encode no
      longer grow with it (docs/benchmark.md, "History"). Every v1-v3 state still
      loads (a worker upgraded in place restores its changelog) and decides exactly as
      before (tests/state/test_golden.py); it is written back as v4 when next changed.
      Fields appended since (older v4 arrays are shorter: they take the defaults):
      ``recent_offers`` and ``offer_outcomes`` (offer responses, issue 23), then
      ``below_since`` (issue 21, the downgrade grace period), then ``service_opt_out``,
      the contribution ``ledger`` and ``ledger_from``, the tier override
      (``override_*``) and ``rules_tier`` (customer value, issue 22).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec
import orjson

from schemas.events import OFFER_OUTCOMES, PRODUCTS, RISK_TYPES, SEGMENTS
from state.decisions import TIERS
from state.windows import DailyWindows

FORMAT_VERSION = 4
NO_DAY = -(2**31)  # "no day yet" (the state has not seen an event)
_AGE_MAX = 0xFFFF

# Closed sets of strings: msgspec checks them on decode and returns the one interned
# string of each. To the type checker they are plain ``str``: the core assigns
# validated event fields to them.
if TYPE_CHECKING:
    Product: TypeAlias = str
    Segment: TypeAlias = str
    RiskType: TypeAlias = str
    Tier: TypeAlias = str
    OfferOutcomeName: TypeAlias = str
else:
    Product = Literal["", "deposit", "wealth", "fund", "bond", "insurance", "loan"]
    Segment = Literal["retail", "sme"]
    RiskType = Literal["C1", "C2", "C3", "C4", "C5"]
    Tier = Literal["mass", "affluent", "hnw", "private"]
    assert Product.__args__ == ("", *PRODUCTS)
    assert Segment.__args__ == SEGMENTS
    assert RiskType.__args__ == RISK_TYPES
    assert Tier.__args__ == TIERS
    OfferOutcomeName = Literal["accepted", "declined", "ignored"]
    assert OfferOutcomeName.__args__ == OFFER_OUTCOMES


def event_digest(event_id: str) -> bytes:
    """8-byte BLAKE2b of an event_id: what the dedup set stores (fixed size per entry).

    A stable hash (not Python's salted ``hash``) so the set survives restarts; at 64 bits
    a false "duplicate" among a customer's last few hundred ids has odds ~1e-17.
    """
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


def event_key(event_id: str) -> int:
    """``event_digest`` as an integer: the dedup key, and the last-writer tie-break."""
    return int.from_bytes(event_digest(event_id), "big")


class Account(msgspec.Struct, array_like=True, gc=False, forbid_unknown_fields=True):
    """Latest known balance of one account (last writer by event time wins)."""

    ts: int  # event time of the event that set the balance
    tie: int  # event_key of its event_id: breaks ties between equal ts
    balance: str  # in ``currency``, the exact decimal text (str(Decimal))
    fen: int  # balance in CNY fen at the FX rate of the time it was set
    product: Product = ""  # one of PRODUCTS, or "" if only seen on transactions
    currency: str = "CNY"

    @classmethod
    def load_v3(cls, row: list[Any]) -> Account:
        """A v1-v3 row ``[ts, tie, balance, currency, product, fen]``."""
        product = str(row[4])
        if product and product not in PRODUCTS:
            raise ValueError(f"customer state: unknown product {product!r}")
        return cls(
            int(row[0]),
            _tie(row[1]),
            str(Decimal(row[2])),
            int(row[5]),
            product,
            str(row[3]),
        )


class MadeOffer(msgspec.Struct, array_like=True, gc=False, forbid_unknown_fields=True):
    """One of the customer's latest offers: what a response naming it is attributed to
    (its event_id is derived from a hash, so the kind cannot be read back from it)."""

    key: int  # event_key of the offer's event_id
    ts: int  # the offer's event time
    kind: str
    tier: Tier  # the tier in the offer (the KPIs' and the metric's tier)


class OfferOutcome(msgspec.Struct, array_like=True, gc=False, forbid_unknown_fields=True):
    """The latest response (by event time) to an offer of one kind."""

    outcome: OfferOutcomeName
    ts: int  # the response's event time
    tie: int  # event_key of the response's event_id: breaks ties between equal ts


class CustomerState(
    msgspec.Struct,
    array_like=True,
    gc=False,
    eq=False,
    tag=FORMAT_VERSION,
    forbid_unknown_fields=True,
):
    """Everything the core remembers about one customer (mutable; see core.apply).

    The field order is the serialized layout (see the module doc): append new fields
    at the end, with a default."""

    customer_id: str
    #: applied-event counter: orders Redis profile writes (older never overwrites newer)
    version: int = 0
    #: event time (ms) of the newest applied event; 0 before the first
    updated_at: int = 0
    #: local day number of ``updated_at``: the customer's event-time "today"
    day: int = NO_DAY
    #: timer watermark (ms): every trigger due at or before it has been decided;
    #: -1 until the first applied event (nothing is due before a customer exists)
    timer_mark: int = -1
    #: local day of the first applied event (dormancy of never-transacting customers)
    first_day: int = NO_DAY
    accounts: dict[str, Account] = msgspec.field(default_factory=dict)
    aum_fen: int = 0  # derived: sum of non-loan accounts' fen (kept in step by the core)
    windows: DailyWindows = msgspec.field(default_factory=DailyWindows)
    #: dedup: 8-byte event digests, oldest first (see has_seen / remember)
    seen_keys: bytes = b""
    #: the local day each of ``seen_keys`` was applied, run-length: [day, n, day, n, ...]
    seen_days: list[int] = msgspec.field(default_factory=list)
    # BG/NBD / Gamma-Gamma sufficient statistics over distinct transaction days
    tx_first_day: int = NO_DAY
    tx_last_day: int = NO_DAY
    tx_days: int = 0  # distinct days with a transaction; x = tx_days - 1
    tx_total_fen: int = 0  # all-time sum of counted transactions
    tx_first_fen: int = 0  # sum on the first day (not a repeat purchase)
    #: AUM samples, by day ascending: [day, highest fen that day, last fen that day, ...]
    aum_samples: list[int] = msgspec.field(default_factory=list)
    # profile (last writer by event time wins)
    segment: Segment | None = None
    consent: bool = False
    birth_date: str | None = None
    profile_ts: int = -1
    profile_tie: int = 0
    # risk assessment (last writer by event time wins)
    risk_score: int | None = None
    risk_experience: float = 0.0
    risk_type: RiskType | None = None
    assessed_ts: int = -1
    assess_tie: int = 0
    # tier, offers, alerts
    tier: Tier | None = None
    tier_since: int = 0
    last_offer: dict[str, int] = msgspec.field(default_factory=dict)
    last_alert: dict[str, int] = msgspec.field(default_factory=dict)
    greeted_year: int = 0
    churn_day: int = NO_DAY
    #: event time of the newest contact whose outcome resets the review cadence
    last_contact_ts: int = -1
    #: campaign id -> its start day, for campaigns already decided for this customer
    campaigns_done: dict[str, int] = msgspec.field(default_factory=dict)
    late_events: int = 0
    # -- added after v4 first shipped: older v4 states load with the defaults
    # offer responses (issue 23; state/responses.py): the latest offers, oldest first
    # (at most ``offers.answerable_offers``), and per offer kind its latest outcome
    recent_offers: list[MadeOffer] = msgspec.field(default_factory=list)
    offer_outcomes: dict[str, OfferOutcome] = msgspec.field(default_factory=dict)
    #: tier policy (issue 21): event time (ms) of the first tier evaluation since which
    #: the basis has stayed below the current tier's downgrade threshold; -1 = not below
    #: (only kept while ``tiers.downgrade_grace_days`` is set, state/tier_policy.py)
    below_since: int = -1
    # ---- customer value and tier policy (issue 22); absent from older v4 states
    #: the profile's service_contact_opt_out (last writer by event time wins, with it)
    service_opt_out: bool = False
    #: calendar months of money flows, by month ascending (state/contribution.py):
    #: [month, inflow fen, spend fen, income fen, ...]; the current month and 12 before
    ledger: list[int] = msgspec.field(default_factory=list)
    #: local day from which the ledger holds every transaction (NO_DAY: not started; a
    #: state written before the ledger existed starts it at its next event)
    ledger_from: int = NO_DAY
    #: a relationship manager's tier override in effect (state/overrides.py), or None
    override_tier: Tier | None = None
    #: when it expires (event-time ms); -1: when cleared
    override_until: int = -1
    override_by: str = ""
    #: (event time, event key) of the newest override record applied: last writer wins
    override_ts: int = -1
    override_tie: int = 0
    #: while an override is in effect: the tier the rules hold (None: none yet)
    rules_tier: Tier | None = None

    def __post_init__(self) -> None:
        """The checks a decoded state gets beyond its types (a corrupt state fails on
        load, not on some later event): the dedup set's keys and days agree."""
        runs = self.seen_days
        if len(runs) & 1 or 8 * sum(runs[1::2]) != len(self.seen_keys):
            raise ValueError("corrupt dedup set (keys and days disagree)")

    # ------------------------------------------------------------------ helpers

    def copy(self) -> CustomerState:
        """An independent copy, for callers that need the state before ``apply``."""
        return CustomerState.from_bytes(self.to_bytes())

    def recompute_aum(self) -> None:
        self.aum_fen = sum(a.fen for a in self.accounts.values() if a.product != "loan")

    # --- the dedup set: FIFO of event digests, each with the day it was applied

    def has_seen(self, key: int) -> bool:
        """Whether the event with this ``event_key`` is in the dedup set."""
        keys = self.seen_keys
        kb = key.to_bytes(8, "big")
        i = keys.find(kb)
        while i >= 0:
            if i & 7 == 0:  # aligned on an entry, not across two
                return True
            i = keys.find(kb, i + 1)
        return False

    def remember(self, key: int, max_size: int) -> None:
        """Add ``key``, applied today; beyond ``max_size`` entries the oldest goes."""
        self.seen_keys += key.to_bytes(8, "big")
        runs = self.seen_days
        if runs and runs[-2] == self.day:
            runs[-1] += 1
        else:
            runs += (self.day, 1)
        if len(self.seen_keys) > 8 * max_size:
            self.seen_keys = self.seen_keys[8:]
            if runs[1] == 1:
                del runs[:2]
            else:
                runs[1] -= 1

    def forget_seen_before(self, horizon: int) -> None:
        """Drop the entries applied before day ``horizon`` (the oldest ones: a
        customer's day never moves back, so the runs are in day order)."""
        runs = self.seen_days
        i = n = 0
        while i < len(runs) and runs[i] < horizon:
            n += runs[i + 1]
            i += 2
        if i:
            del runs[:i]
            self.seen_keys = self.seen_keys[8 * n :]

    @property
    def seen(self) -> dict[int, int]:
        """The dedup set as ``event_key -> day applied``, oldest first: a decoded copy,
        for inspection and tests."""
        keys = struct.unpack(f">{len(self.seen_keys) // 8}Q", self.seen_keys)
        days = [
            d
            for i in range(0, len(self.seen_days), 2)
            for d in [self.seen_days[i]] * self.seen_days[i + 1]
        ]
        return dict(zip(keys, days, strict=True))

    # --- AUM samples

    @property
    def aum_days(self) -> dict[int, list[int]]:
        """The AUM samples as ``day -> [high, close]``: a decoded copy, for inspection."""
        s = self.aum_samples
        return {s[i]: [s[i + 1], s[i + 2]] for i in range(0, len(s), 3)}

    # ------------------------------------------------------------ serialization

    def to_bytes(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def from_bytes(cls, b: bytes) -> CustomerState:
        """Load any known format version; missing fields take their defaults."""
        if b[:1] == b"{":
            return _from_json(b)
        try:
            return _DECODER.decode(b)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            v = _array_head(b)
            if v is not None and v > FORMAT_VERSION:
                raise ValueError(
                    f"customer state format v{v} is newer than this code "
                    f"(v{FORMAT_VERSION}); upgrade tierstream instead of reading it"
                ) from None
            raise ValueError(f"customer state: {e}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CustomerState):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # mutable


def _array_head(b: bytes) -> int | None:
    """The first element of a MessagePack array if it is a small positive int (the
    format version of a v4-or-later state), else None."""
    if len(b) > 1 and 0x90 <= b[0] <= 0x9F:
        v = b[1]
    elif len(b) > 3 and b[0] == 0xDC:
        v = b[3]
    else:
        return None
    return v if v < 0x80 else None


_ENCODER = msgspec.msgpack.Encoder(order="deterministic")  # dict keys sorted
_DECODER = msgspec.msgpack.Decoder(CustomerState)


# ---------------------------------------------------------------- v1 - v3 (JSON)


def _from_json(b: bytes) -> CustomerState:
    """A v1-v3 state, as the v3 code loaded it, in today's structures."""
    try:
        d = orjson.loads(b)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"customer state is not valid JSON: {e}") from None
    if not isinstance(d, dict) or "c" not in d:
        raise ValueError("customer state: not a state object (no customer id)")
    v = d.get("v")
    if not isinstance(v, int) or v < 1:
        raise ValueError(f"customer state: bad format version {v!r}")
    if v > 3:
        raise ValueError(f"customer state: format v{v} is not JSON")
    try:
        return _load_json(d, v)
    except (TypeError, KeyError, IndexError, InvalidOperation, msgspec.ValidationError) as e:
        raise ValueError(f"customer state: corrupt v{v} state ({type(e).__name__}: {e})") from None


def _load_json(d: dict[str, Any], v: int) -> CustomerState:
    # Fields left out keep the defaults; the ones present are converted in the same
    # order as the v3 code did (so a corrupt state fails the same way).
    s = CustomerState(str(d["c"]))
    get = d.get
    s.version = int(get("n", 0))
    s.updated_at = int(get("u", 0))
    s.day = int(get("d", NO_DAY))
    if "a" in d:
        s.accounts = {k: Account.load_v3(row) for k, row in d["a"].items()}
        s.recompute_aum()
    if "w" in d:
        s.windows = DailyWindows.from_v3(d["w"], dense=v == 1)
    if "L" in d:
        s.late_events = int(d["L"])
    raw_seen = get("s")
    if isinstance(raw_seen, str):
        seen = _load_seen(raw_seen, s.day)
    elif isinstance(raw_seen, list):  # v1: plain event_id strings, applied "today"
        seen = {event_key(str(e)): s.day for e in raw_seen}
    else:
        seen = {}
    _set_seen(s, seen)
    if "t" in d:
        (
            s.tx_first_day,
            s.tx_last_day,
            s.tx_days,
            s.tx_total_fen,
            s.tx_first_fen,
        ) = map(int, d["t"])
    if "h" in d:
        samples = _load_samples(d["h"], v)
        s.aum_samples = [x for day in sorted(samples) for x in (day, *samples[day])]
    if "p" in d:
        seg, consent, birth, pts, peid = d["p"]
        s.segment, s.consent, s.birth_date = _segment(seg), bool(consent), birth
        s.profile_ts, s.profile_tie = int(pts), _tie(peid)
    if "r" in d:
        score, exp, rtype, ats, aeid = d["r"]
        s.risk_score, s.risk_experience, s.risk_type = score, float(exp), _risk_type(rtype)
        s.assessed_ts, s.assess_tie = int(ats), _tie(aeid)
    if "T" in d:
        s.tier, s.tier_since = _tier(str(d["T"][0])), int(d["T"][1])
    if "o" in d:
        s.last_offer = {str(k): int(x) for k, x in sorted(d["o"].items())}
    if "la" in d:
        s.last_alert = {str(k): int(x) for k, x in sorted(d["la"].items())}
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
        s.campaigns_done = {str(k): int(x) for k, x in sorted(d["cp"].items())}
    # the in-memory types are checked as a v4 state's would be
    return _DECODER.decode(_ENCODER.encode(s))


def _segment(x: object) -> Segment | None:
    if x is not None and x not in SEGMENTS:
        raise ValueError(f"customer state: unknown segment {x!r}")
    return x


def _risk_type(x: object) -> RiskType | None:
    if x is not None and x not in RISK_TYPES:
        raise ValueError(f"customer state: unknown risk type {x!r}")
    return x


def _tier(x: str) -> Tier:
    if x not in TIERS:
        raise ValueError(f"customer state: unknown tier {x!r}")
    return x


def _set_seen(s: CustomerState, seen: dict[int, int]) -> None:
    """The v3 dedup dict (FIFO order) as keys bytes + run-length days."""
    s.seen_keys = struct.pack(f">{len(seen)}Q", *seen)
    runs: list[int] = []
    for day in seen.values():
        if runs and runs[-2] == day:
            runs[-1] += 1
        else:
            runs += (day, 1)
    s.seen_days = runs


def _tie(x: object) -> int:
    """Last-writer tie-break key; v1 stored the event_id itself."""
    return event_key(x) if isinstance(x, str) else int(x)  # type: ignore[call-overload]


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


def _load_seen(text: str, today: int) -> dict[int, int]:
    """A v2/v3 dedup set: n 8-byte keys, then n 2-byte ages (today - day applied)."""
    raw = base64.b64decode(text)
    n, rest = divmod(len(raw), 10)
    if rest:
        raise ValueError("customer state: corrupt dedup set")
    vals = struct.unpack(f">{n}Q{n}H", raw)
    return dict(zip(vals[:n], [today - age for age in vals[n:]], strict=True))
