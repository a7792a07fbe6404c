"""Bounds on everything an input controls, and the largest state they allow.

Why: one record must never stop a worker (issue 18). A record the code cannot handle
-- a time in year 1, a 170 KB key, the 10,000th account of one customer -- must be
turned away with a reason before it touches anything, and no sequence of accepted
records may grow a customer's serialized state past what the changelog accepts (its
records are limited to 1 MiB by default). So:

* the decoder holds every input to the limits below (schemas/decoder.py takes them as
  constructor parameters: ``Decoder(**rules.limits.decoder())``);
* the core checks them again, and the ones only it can check (accounts per customer,
  the 64-bit range of its integer sums), before it mutates anything (state/core.py);
* every part of a state is bounded by construction -- by these limits or by the rules
  (window days, dedup size, offer kinds, campaigns) -- so ``state_size_bound(rules)``
  is a provable upper bound of ``len(state.to_bytes())``, and the rules loader refuses
  rules whose bound exceeds ``max_state_bytes``. docs/rules.md ("Limits") lists what
  bounds each part; tests/state/test_limits.py builds the worst state and checks it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from schemas.decoder import DecoderLimits
from schemas.events import OFFER_OUTCOMES, PRODUCTS, SEGMENTS
from state.catalogue import Campaign
from state.windows import N_CHANNELS

__all__ = ["MAX_FEN", "Limits", "SizedRules", "state_size_bound"]

#: The state's integers (fen sums, balances) are written as MessagePack integers, which
#: hold 64 bits (v3's JSON numbers too: orjson writes them only within 64 bits): every
#: sum the core keeps stays within +-MAX_FEN fen (about 92 quadrillion CNY), and an
#: event that would leave that range is rejected.
MAX_FEN = 2**63 - 1
#: Rows of the flow ledger (state/contribution.py: the current month and 12 before).
LEDGER_ROWS = 13
#: The longest ``set_by`` of a tier override (its schema's maxLength).
SET_BY_CHARS = 64

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _year_start_ms(year: int) -> int:
    return (datetime(year, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Limits:
    """The ``[limits]`` table of the rules (see docs/rules.md for each default)."""

    max_payload_bytes: int
    max_key_bytes: int
    max_id_chars: int
    max_field_chars: int
    min_year: int
    max_year: int
    max_future_skew_ms: int
    max_accounts: int
    max_state_bytes: int
    #: event times accepted: 1 January ``min_year`` .. 31 December ``max_year``, UTC
    min_ts_ms: int = field(init=False)
    max_ts_ms: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_ts_ms", _year_start_ms(self.min_year))
        object.__setattr__(self, "max_ts_ms", _year_start_ms(self.max_year + 1) - 1)

    def decoder(self) -> DecoderLimits:
        """The decoder's constructor arguments: ``Decoder(**rules.limits.decoder())``."""
        return {
            "max_bytes": self.max_payload_bytes,
            "max_future_skew_ms": self.max_future_skew_ms,
            "max_key_bytes": self.max_key_bytes,
            "max_id_chars": self.max_id_chars,
            "max_field_chars": self.max_field_chars,
            "min_year": self.min_year,
            "max_year": self.max_year,
        }


# ------------------------------------------------------------------ the size bound
# Worst cases of what MessagePack takes for each value of a v4 state
# (state/customer.py: one array, every field in declaration order):
#: an int the core keeps: a 1-byte marker and up to 8 bytes (int64 / uint64)
_INT = 9
#: a float64
_FLOAT = 9
#: the longest header of a str, bin, array or map (marker + 32-bit length)
_HEAD = 5
#: one character of a string taken from an input, as UTF-8 (MessagePack does not escape)
_CHAR = 4
#: a balance as str(Decimal): the core holds balances to the decoder's range (below
#: 10^15, at most 8 decimal places): sign, 15 + 8 digits and the point, or a shorter
#: exponent form ("1E-8")
_BALANCE = 25
#: one closed window bucket (state/windows.py): a header byte, the gap in days, one
#: nibble per channel, a varint per channel counted beyond 14, the sum: every varint at
#: its 64-bit worst (10 bytes)
_VARINT = 10
#: the longest offer kind any rules allow (a campaign's kind: state/catalogue.py), ASCII
_KIND = 64


def _str(nbytes: int) -> int:
    return _HEAD + nbytes


def _longest(names: Iterable[str]) -> int:
    return max((len(n.encode()) for n in names), default=0)


class SizedRules(Protocol):
    """What the size bound reads of the rules (state.rules.Rules has it all; a
    Protocol, so that this module and the rules module do not import each other)."""

    @property
    def limits(self) -> Limits: ...
    @property
    def fx(self) -> Mapping[str, Decimal]: ...
    @property
    def window_days(self) -> int: ...
    @property
    def dedup_size(self) -> int: ...
    @property
    def aum_drop_days(self) -> int: ...
    @property
    def tier_basis(self) -> str: ...
    @property
    def tier_avg_days(self) -> int: ...
    @property
    def offer_kinds(self) -> Collection[str]: ...
    @property
    def alert_cooldown_days(self) -> Mapping[str, int]: ...
    @property
    def campaigns(self) -> tuple[Campaign, ...]: ...
    @property
    def answerable_offers(self) -> int: ...


def state_size_bound(rules: SizedRules) -> int:
    """An upper bound of ``len(state.to_bytes())`` for any state the core can build
    under ``rules`` (docs/rules.md, "Limits", lists the parts)."""
    lim = rules.limits
    ident = _str(lim.max_id_chars * _CHAR)
    # accounts: id -> [ts, tie, "balance", fen, "product", "CCY"]
    account = (
        _HEAD + 3 * _INT + _str(_BALANCE) + _str(_longest(PRODUCTS)) + _str(_longest(rules.fx))
    )
    accounts = _HEAD + lim.max_accounts * (ident + account)
    # windows: totals, the newest bucket's fields, the closed buckets as bytes
    channels = _HEAD + N_CHANNELS * _INT
    bucket = 1 + _VARINT + math.ceil(N_CHANNELS / 2) + N_CHANNELS * _VARINT + _VARINT
    windows = _HEAD + 6 * _INT + 2 * channels + _str(rules.window_days * bucket)
    # dedup set: 8-byte keys as bytes, their days run-length (at worst one run each)
    seen = _str(8 * rules.dedup_size) + _HEAD + 2 * rules.dedup_size * _INT
    # AUM samples: [day, high, close] over the days looked back, plus one
    keep = rules.aum_drop_days
    if rules.tier_basis == "avg_daily":
        keep = max(keep, rules.tier_avg_days)
    samples = _HEAD + 3 * (keep + 1) * _INT
    # named entries (kind -> ts) of the offer caps, alert cooldowns and campaigns done
    named = 3 * _HEAD + sum(
        _str(len(k.encode())) + _INT
        for k in (*rules.offer_kinds, *rules.alert_cooldown_days, *(c.id for c in rules.campaigns))
    )
    # offer responses (state/responses.py): the latest offers [key, ts, kind, tier]
    # (of these or earlier rules: any kind), and per kind of these rules the latest
    # outcome [outcome, ts, tie]
    tier_name = _str(_longest(("mass", "affluent", "hnw", "private")))
    offers = _HEAD + rules.answerable_offers * (_HEAD + 2 * _INT + _str(_KIND) + tier_name)
    outcome = _HEAD + _str(_longest(OFFER_OUTCOMES)) + 2 * _INT
    outcomes = _HEAD + sum(_str(len(k.encode())) + outcome for k in rules.offer_kinds)
    profile = _str(_longest(SEGMENTS)) + 1 + _str(10) + 2 * _INT
    risk = _INT + _FLOAT + _str(2) + 2 * _INT
    tier = _str(_longest(("mass", "affluent", "hnw", "private"))) + _INT
    # the array's header, the version tag and every remaining int field
    scalars = _HEAD + _INT + 6 * _INT + 5 * _INT + 5 * _INT + _INT  # + below_since
    # issue 22: the service opt-out, the flow ledger (13 months x 4 ints) and when it
    # started, a tier override (tier, until, who: at most SET_BY_CHARS, ts, tie) and
    # the rules' tier under it
    longest_tier = _longest(("mass", "affluent", "hnw", "private"))
    value = (
        1
        + _HEAD
        + LEDGER_ROWS * 4 * _INT
        + _INT
        + 2 * _str(longest_tier)
        + 3 * _INT
        + _str(min(lim.max_field_chars, SET_BY_CHARS) * _CHAR)
    )
    return (
        scalars
        + ident  # the customer id
        + accounts
        + windows
        + seen
        + samples
        + named
        + profile
        + risk
        + tier
        + offers
        + outcomes
        + value
    )
