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
from schemas.events import PRODUCTS, SEGMENTS
from state.catalogue import Campaign

__all__ = ["MAX_FEN", "Limits", "SizedRules", "state_size_bound"]

#: The state's integers (fen sums, balances) are written as JSON numbers, which orjson
#: writes only within 64 bits: every sum the core keeps stays within +-MAX_FEN fen
#: (about 92 quadrillion CNY), and an event that would leave that range is rejected.
MAX_FEN = 2**63 - 1

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
# Worst cases of what orjson writes (state/customer.py, CustomerState.to_bytes):
#: an int the core keeps (64-bit: "-9223372036854775808" and 2**64 - 1 have 20 digits)
_INT = 20
#: one character of a string taken from an input: at worst a control character,
#: written as \u00XX (the decoder refuses those in ids; the core's bound does not rely
#: on it). Every other character is at most 4 bytes of UTF-8.
_CHAR = 6
#: a balance as str(Decimal): the core holds balances to the decoder's range (below
#: 10^15, at most 8 decimal places): sign, 15 + 8 digits and the point, or a shorter
#: exponent form ("1E-8")
_BALANCE = 25
#: a float as repr(): at most 24 characters ("-1.2345678901234567e-300")
_FLOAT = 24
#: every top-level key with its quotes, colon and comma, the braces and the scalar
#: fields (v, n, u, d, L, g, cc, tm, fd, ct): far more than they take
_FIXED = 512


def _quoted(chars: int, per_char: int = _CHAR) -> int:
    return chars * per_char + 2


def _longest(names: Iterable[str]) -> int:
    return max((len(n) for n in names), default=0)


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


def state_size_bound(rules: SizedRules) -> int:
    """An upper bound of ``len(state.to_bytes())`` for any state the core can build
    under ``rules`` (docs/rules.md, "Limits", lists the parts)."""
    lim = rules.limits
    ident = _quoted(lim.max_id_chars)
    # accounts: "id":[ts,tie,"balance","CCY","product",fen],
    currency = _quoted(_longest(rules.fx), 1)
    product = _quoted(_longest(PRODUCTS), 1)
    account_row = 2 + 5 + _INT + _INT + _quoted(_BALANCE, 1) + currency + product + _INT
    accounts = lim.max_accounts * (ident + 1 + account_row + 1)
    # window buckets: [day delta, sum, one packed count per channel (6)],
    windows = rules.window_days * (2 + 7 + 8 * _INT + 1)
    # dedup set: base64 of 8-byte keys and 2-byte ages
    seen = 4 * math.ceil(10 * rules.dedup_size / 3) + 2
    # AUM samples: [day delta, close, high], over the days looked back, plus one
    keep = rules.aum_drop_days
    if rules.tier_basis == "avg_daily":
        keep = max(keep, rules.tier_avg_days)
    samples = (keep + 1) * (2 + 2 + 3 * _INT + 1)
    # named entries ("kind":ts,) of the offer caps, alert cooldowns and campaigns done
    offer_kinds = rules.offer_kinds
    named = sum(_quoted(len(k), 1) + 1 + _INT + 1 for k in offer_kinds)
    named += sum(_quoted(len(k), 1) + 1 + _INT + 1 for k in rules.alert_cooldown_days)
    named += sum(_quoted(len(c.id), 1) + 1 + _INT + 1 for c in rules.campaigns)
    tx_stats = 2 + 4 + 5 * _INT
    profile = 2 + 4 + _quoted(_longest(SEGMENTS), 1) + 5 + _quoted(10, 1) + 2 * _INT
    risk = 2 + 4 + 3 + _FLOAT + _quoted(2, 1) + 2 * _INT
    tier = 2 + 1 + _quoted(_longest(("mass", "affluent", "hnw", "private")), 1) + _INT
    return (
        _FIXED
        + ident  # the customer id
        + accounts
        + windows
        + seen
        + samples
        + named
        + tx_stats
        + profile
        + risk
        + tier
    )
