"""Typed access to the rules' merged TOML table (state/rules.py builds ``Rules`` with it).

Why a reader: every value of a rule file is checked where it is read, and every error
names the dotted key (``rules: 'tiers.downgrade_band' must be ...``), so bad
configuration fails at start-up saying exactly what to fix.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from itertools import pairwise
from typing import Any


def cny_to_fen(amount: Decimal) -> int:
    """CNY amount -> integer fen (0.01), half-even; the one rounding rule for CNY."""
    return int(amount.scaleb(2).to_integral_value(rounding=ROUND_HALF_EVEN))


class TableReader:
    """Typed access to the merged table; every error names the dotted key."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.t = table

    def raw(self, key: str) -> Any:
        node: Any = self.t
        for part in key.split("."):
            node = node[part]
        return node

    def string(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        v = self.raw(key)
        if not isinstance(v, str) or not v:
            raise ValueError(f"rules: '{key}' must be a non-empty string, got {v!r}")
        if choices is not None and v not in choices:
            raise ValueError(f"rules: '{key}' must be one of {list(choices)}, got {v!r}")
        return v

    def integer(self, key: str, lo: int = 0, v: Any = None) -> int:
        v = self.raw(key) if v is None else v
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"rules: '{key}' must be an integer >= {lo}, got {v!r}")
        return v

    def number(self, key: str, lo: float = 0.0, hi: float = math.inf) -> float:
        v = self.raw(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise ValueError(f"rules: '{key}' must be a number in [{lo}, {hi}], got {v!r}")
        return float(v)

    def positive(self, key: str) -> float:
        v = self.raw(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < math.inf:
            raise ValueError(f"rules: '{key}' must be a number > 0, got {v!r}")
        return float(v)

    def decimal(self, key: str, v: Any = None, lo: Decimal = Decimal(0)) -> Decimal:
        v = self.raw(key) if v is None else v
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ValueError(f"rules: '{key}' must be a decimal string, got {v!r}")
        try:
            d = Decimal(str(v))
        except InvalidOperation:
            raise ValueError(f"rules: '{key}' must be a decimal number, got {v!r}") from None
        if not d.is_finite() or d < lo:
            raise ValueError(f"rules: '{key}' must be a finite decimal >= {lo}, got {v!r}")
        return d

    def ratio(self, key: str) -> Decimal:
        d = self.decimal(key)
        if d > 1:
            raise ValueError(f"rules: '{key}' must be between 0 and 1, got {d}")
        return d

    def ascending(self, key: str, kind: str) -> tuple[Any, ...]:
        v = self.raw(key)
        if not isinstance(v, list) or len(v) != 4:
            raise ValueError(f"rules: '{key}' must be a list of 4 cut-offs, got {v!r}")
        items: list[Any] = [
            self.decimal(key, x) if kind == "decimal" else self.integer(key, 0, x) for x in v
        ]
        if any(a >= b for a, b in pairwise(items)):
            raise ValueError(f"rules: '{key}' must be strictly ascending, got {v!r}")
        return tuple(items)
