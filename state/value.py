"""Customer value models: BG/NBD (purchase process), Gamma-Gamma (spend) and CLV.

Why this module exists: the tiering core wants a forward-looking view of a customer
("how likely is she still active, how much will she bring") and not only trailing
balances. The models are the standard ones from Fader, Hardie & Lee:

* BG/NBD -- "Counting Your Customers the Easy Way" (Marketing Science, 2005), with the
  conditional expectation in eq. (10) and P(alive) from the accompanying note
  "Computing P(alive) Using the BG/NBD Model".
* Gamma-Gamma -- Fader & Hardie, "The Gamma-Gamma Model of Monetary Value" (2013).

Why stdlib ``math`` only: these functions run on the streaming hot path for every
customer update, so they must be cheap to import and to call, and they must be pure
(no clock, no randomness, no I/O) so that replays are reproducible. Fitting the
parameters is offline and lives in ``state.clv_fit`` (numpy/scipy).

Units: ``x`` is the number of *repeat* purchases, ``t_x`` the time of the last purchase
and ``T`` the age of the customer, both measured from the first purchase, and ``t`` /
``horizon`` are in the **same time unit the parameters were fitted in** (weeks for the
CDNOW estimates). ``alpha`` is a time scale, so parameters fitted in weeks must not be
used with ages in days.

Numerics: everything that could overflow for heavy buyers (``x`` in the hundreds) is
done in log space, and the Gauss hypergeometric function is evaluated after Euler's
transformation so that its parameters no longer grow with ``x`` (see
``_bgnbd_tail_factor``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import hyp2f1 as _hyp2f1

__all__ = [
    "BgNbdParams",
    "GammaGammaParams",
    "clv",
    "expected_avg_spend",
    "expected_purchases",
    "p_alive",
]

# Series evaluation of 2F1: stop when a term no longer moves the sum at double
# precision; refuse (rather than silently return garbage) if that takes absurdly long.
_SERIES_REL_TOL = 1e-16
_SERIES_MAX_TERMS = 1_000_000


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """BG/NBD parameters: Gamma(r, alpha) purchase rates, Beta(a, b) dropout probability."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        # Validate once at construction so the hot-path functions need not.
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"BgNbdParams.{name} must be finite and > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, v)."""

    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        for name in ("p", "q", "v"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"GammaGammaParams.{name} must be finite and > 0, got {value!r}")
        if self.q <= 1.0:
            # E[spend] = p*v/(q-1) only exists for q > 1.
            raise ValueError(f"GammaGammaParams.q must be > 1 for a finite mean, got {self.q!r}")


def _check_history(x: float, t_x: float, T: float) -> None:
    """Reject histories the model cannot describe instead of returning nonsense.

    With x == 0 the recency is conventionally 0, but it does not enter any formula, so
    any value in [0, T] is accepted rather than failing a live customer on a convention.
    """
    if not (math.isfinite(x) and math.isfinite(t_x) and math.isfinite(T)):
        raise ValueError(f"x, t_x, T must be finite, got {x!r}, {t_x!r}, {T!r}")
    if x < 0.0:
        raise ValueError(f"x (repeat purchases) must be >= 0, got {x!r}")
    if t_x < 0.0 or t_x > T:
        raise ValueError(f"need 0 <= t_x <= T, got t_x={t_x!r}, T={T!r}")


def _log_dropout_odds(x: float, t_x: float, T: float, params: BgNbdParams) -> float:
    """log of  a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)  for x > 0.

    This is the odds "dropped out after the last purchase" : "still alive"; computing it
    as a log keeps ``(...)^(r+x)`` from overflowing for heavy buyers.
    """
    denom = params.b + x - 1.0
    if denom <= 0.0:
        # Only possible for 0 < x < 1 with b < 1: not a valid purchase count.
        raise ValueError(f"b + x - 1 must be > 0 (x={x!r}, b={params.b!r}); x is a count")
    return (
        math.log(params.a)
        - math.log(denom)
        + (params.r + x) * (math.log(params.alpha + T) - math.log(params.alpha + t_x))
    )


def _inv_one_plus_exp(log_odds: float) -> float:
    """1 / (1 + exp(log_odds)) without overflow for either sign."""
    if log_odds > 0.0:
        e = math.exp(-log_odds)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(log_odds))


def p_alive(x: float, t_x: float, T: float, params: BgNbdParams) -> float:
    """Probability the customer is still active at age ``T`` (FHL 2005 / P(alive) note).

    Closed form ``1 / (1 + a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x))`` for x > 0; a
    customer with no repeat purchase cannot have dropped out yet under BG/NBD (dropout
    only happens right after a purchase), hence exactly 1 for x == 0.
    """
    _check_history(x, t_x, T)
    if x == 0.0:
        return 1.0
    return _inv_one_plus_exp(_log_dropout_odds(x, t_x, T, params))


#: Below these the pure series is fast and exact enough; above, use scipy's 2F1.
_EPS_SERIES_ONLY = 1e-3
_Z_SERIES_ONLY = 0.5


def _bgnbd_tail_factor(t: float, x: float, T: float, params: BgNbdParams) -> float:
    """(1 - ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z)) / (a-1).

    with ``z = t/(alpha+T+t)``. Evaluated stably:

    * Euler's transformation  2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)  and
      (alpha+T)/(alpha+T+t) = 1-z turn the product into
      ``(1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z)``. The new upper parameters do not
      depend on x, so the series terms are bounded and shrink faster as x grows (the
      raw series has terms of order exp(x*z) that only cancel against (1-z)^(r+x)).
    * Writing eps = a-1 and 2F1(.., eps; ..) = 1 + eps*G, the factor is
      ``-expm1(eps*(log1p(-z) + log1p(eps*G)/eps)) / eps``, which has no cancellation
      for small t and a removable singularity at a == 1 that we evaluate by its limit.
    """
    A = params.r + x
    C = params.a + params.b + x - 1.0
    if C <= 0.0:
        raise ValueError(f"a + b + x - 1 must be > 0 (a={params.a!r}, b={params.b!r}, x={x!r})")
    eps = params.a - 1.0
    z = t / (params.alpha + T + t)
    c_minus_a = C - A  # = a + b - 1 - r

    if abs(eps) > _EPS_SERIES_ONLY and z > _Z_SERIES_ONLY:
        # Near z = 1 the series needs hundreds of terms (a new customer's z is ~0.97
        # over a year): scipy's hyp2f1 (compiled, with its own transformations near 1)
        # costs about a microsecond. Away from eps == 0 there is no cancellation in
        # (F - 1) / eps. Deterministic: same inputs, same result.
        g = (float(_hyp2f1(c_minus_a, eps, C, z)) - 1.0) / eps
        log1m_z = math.log1p(-z)
        return -math.expm1(eps * (log1m_z + math.log1p(eps * g) / eps)) / eps

    # G = (2F1(C-A, eps; C; z) - 1) / eps as a power series in z, divided through by eps
    # termwise so that it is well defined at eps == 0.
    term = c_minus_a / C * z
    total = term
    n = 1
    while abs(term) > _SERIES_REL_TOL * abs(total) or n < 2:
        term *= (c_minus_a + n) * (eps + n) / ((C + n) * (n + 1)) * z
        total += term
        n += 1
        if n > _SERIES_MAX_TERMS:
            raise ArithmeticError(f"2F1 series did not converge (z={z!r}, x={x!r})")
    g = total

    log1m_z = math.log1p(-z)
    if eps == 0.0:
        u = log1m_z + g
        return -u
    u = log1m_z + math.log1p(eps * g) / eps
    return -math.expm1(eps * u) / eps


def expected_purchases(t: float, x: float, t_x: float, T: float, params: BgNbdParams) -> float:
    """E[number of purchases in (T, T+t] | x, t_x, T]  (FHL 2005, eq. 10).

    ``(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]``
    divided by ``1 + [x>0] * a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)``, with
    ``z = t/(alpha+T+t)``. ``t`` is in the time unit the parameters were fitted in.
    """
    _check_history(x, t_x, T)
    if not (math.isfinite(t) and t >= 0.0):
        raise ValueError(f"t must be finite and >= 0, got {t!r}")
    if t == 0.0:
        return 0.0
    numerator = (params.a + params.b + x - 1.0) * _bgnbd_tail_factor(t, x, T, params)
    if x == 0.0:
        return numerator
    # numerator / (1 + odds) == numerator * p_alive
    return numerator * _inv_one_plus_exp(_log_dropout_odds(x, t_x, T, params))


def expected_avg_spend(x: float, mean_spend: float, params: GammaGammaParams) -> float:
    """E[average transaction value | x transactions with mean ``mean_spend``].

    Gamma-Gamma posterior mean ``p*(v + x*mean_spend) / (p*x + q - 1)``: a weighted
    average of the population mean ``p*v/(q-1)`` and the customer's own mean, where
    more transactions mean more weight on the customer's own history. With no
    transactions (x == 0) it is the population mean.

    The model is for positive spends; ``mean_spend`` is a float because this is a
    statistical estimate, not a booking -- convert exact money amounts at the boundary.
    A mean of exactly 0 (repeat transactions that sum to less than a fen) takes the
    formula's limit as the mean goes to 0 from above, so the estimate does not jump
    between a mean of one fen and none (a customer's input must never make it raise:
    fuzzing through a worker found such a customer).
    """
    if not (math.isfinite(x) and x >= 0.0):
        raise ValueError(f"x must be finite and >= 0, got {x!r}")
    if x == 0.0:
        return params.p * params.v / (params.q - 1.0)
    if not (math.isfinite(mean_spend) and mean_spend >= 0.0):
        raise ValueError(f"mean_spend must be finite and >= 0 when x > 0, got {mean_spend!r}")
    return params.p * (params.v + x * mean_spend) / (params.p * x + params.q - 1.0)


def clv(
    x: float,
    t_x: float,
    T: float,
    mean_spend: float,
    bg: BgNbdParams,
    gg: GammaGammaParams,
    horizon: int,
    discount_rate: float,
) -> float:
    """Discounted expected value of the customer over the next ``horizon`` periods.

    ``sum_{k=1..horizon} (E[Y(k)] - E[Y(k-1)]) * E[spend] / (1 + discount_rate)^k`` where
    E[Y(k)] is ``expected_purchases(k, ...)``. A *period* is one unit of the time scale
    the BG/NBD parameters were fitted in (a week for CDNOW-style weekly data) and
    ``discount_rate`` is per period -- the same discrete discounting as lifetimes'
    ``customer_lifetime_value`` when its ``freq`` equals the fitting unit. The result is
    in the currency unit of ``mean_spend``: ``discounted_purchases(...) * E[spend]``.
    """
    spend = expected_avg_spend(x, mean_spend, gg)
    return discounted_purchases(x, t_x, T, bg, horizon, discount_rate) * spend


def discounted_purchases(
    x: float, t_x: float, T: float, bg: BgNbdParams, horizon: int, discount_rate: float
) -> float:
    """``sum_{k=1..horizon} (E[Y(k)] - E[Y(k-1)]) / (1 + discount_rate)^k``: the part of
    ``clv`` that does not depend on spend (and holds all of its cost).

    Split out so a caller can memoise it on (x, t_x, T) alone: the mean spend changes
    with every transaction, the purchase history at most once per customer per day.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 0:
        raise ValueError(f"horizon must be a non-negative int, got {horizon!r}")
    if not (math.isfinite(discount_rate) and discount_rate > -1.0):
        raise ValueError(f"discount_rate must be finite and > -1, got {discount_rate!r}")
    total = 0.0
    previous = 0.0
    log_growth = math.log1p(discount_rate)
    for k in range(1, horizon + 1):
        current = expected_purchases(float(k), x, t_x, T, bg)
        total += (current - previous) * math.exp(-k * log_growth)
        previous = current
    return total
