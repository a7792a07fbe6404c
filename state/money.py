"""Exact money helpers: CNY as integer fen, FX via Decimal, one rounding rule.

Why integer fen: sums over windows and accounts must be exact and order independent;
after converting one amount to CNY (Decimal x Decimal rate, rounded half-even to the
fen), everything downstream is integer arithmetic.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

#: A private context so a caller's global decimal settings can never change results.
CTX = Context(prec=50, rounding=ROUND_HALF_EVEN)


def to_fen(amount: Decimal, rate: Decimal) -> int:
    """``amount`` in a currency with CNY ``rate`` -> integer CNY fen (half-even)."""
    return int(CTX.multiply(amount, rate).scaleb(2, CTX).to_integral_value(ROUND_HALF_EVEN, CTX))


def fen_str(fen: int | Decimal) -> str:
    """Integer (or exact Decimal) fen as a CNY string with two decimals, e.g. "1234.50"."""
    if isinstance(fen, int):  # the common case, without Decimal arithmetic
        q, r = divmod(-fen if fen < 0 else fen, 100)
        return f"{'-' if fen < 0 else ''}{q}.{r:02d}"
    d = fen.scaleb(-2, CTX).quantize(Decimal("0.01"), ROUND_HALF_EVEN, CTX)
    return f"{d:f}" if d else "0.00"


def ratio_str(num: int, den: int) -> str:
    """An exact-ish ratio for reasons: num/den rounded half-even to 4 decimals."""
    if den == 0:
        return ""
    q = CTX.divide(Decimal(num), Decimal(den))
    return f"{q.quantize(Decimal('0.0001'), ROUND_HALF_EVEN, CTX):f}"
