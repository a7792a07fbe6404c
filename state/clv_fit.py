"""Offline maximum-likelihood fitting of the BG/NBD and Gamma-Gamma models.

Why separate from ``state.value``: fitting needs numpy/scipy and runs in batch (a CLI
over a customer summary file), while scoring runs per event on the hot path with stdlib
maths only. This module is still pure -- arrays in, parameters out, no I/O, no clock,
no randomness -- so a fit is reproducible bit-for-bit from its inputs.

Likelihoods are the published ones (identical to the ``lifetimes`` package without a
penalizer):

* BG/NBD, Fader, Hardie & Lee (2005), eq. (6): for a customer with ``x`` repeat
  purchases, last at ``t_x``, observed until ``T``::

      L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
        + [x>0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))

* Gamma-Gamma, Fader & Hardie (2013), for the mean ``m`` of ``x`` repeat spends::

      L = Gamma(p x + q) / (Gamma(p x) Gamma(q)) * v^q m^(p x - 1) x^(p x) / (v + m x)^(p x + q)

Optimisation is on log-parameters (keeps them positive without bounds) with
Nelder-Mead, restarted from its own optimum until the objective stops improving, which
is the usual cure for the simplex collapsing early on these ridge-shaped likelihoods.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from state.value import BgNbdParams, GammaGammaParams

__all__ = [
    "FitError",
    "bgnbd_log_likelihood",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
]

FloatArray = npt.NDArray[np.float64]

_XATOL = 1e-10
_FATOL = 1e-13
_MAX_RESTARTS = 5


class FitError(ValueError):
    """Input the models cannot be fitted to, or an optimiser that did not converge."""


def _as_vector(name: str, values: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise FitError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise FitError(f"{name}[{int(bad[0])}] is not finite: {arr[bad[0]]!r}")
    return arr


def _first_bad(mask: npt.NDArray[np.bool_]) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _check_rfm(
    frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validate the recency/frequency summary; errors name the first offending index."""
    x = _as_vector("frequency", frequency)
    t_x = _as_vector("recency", recency)
    age = _as_vector("T", T)
    if not (x.shape == t_x.shape == age.shape):
        raise FitError(
            f"frequency, recency and T must have equal length, got {x.size}, {t_x.size}, {age.size}"
        )
    if x.size == 0:
        raise FitError("no customers to fit")
    checks: list[tuple[npt.NDArray[np.bool_], str]] = [
        (x < 0, "frequency must be >= 0"),
        (x != np.floor(x), "frequency must be a whole number of repeat purchases"),
        (t_x < 0, "recency must be >= 0"),
        (age <= 0, "T must be > 0"),
        (t_x > age, "recency must be <= T"),
    ]
    for mask, message in checks:
        i = _first_bad(mask)
        if i is not None:
            raise FitError(
                f"customer index {i}: {message} "
                f"(frequency={x[i]!r}, recency={t_x[i]!r}, T={age[i]!r})"
            )
    return x, t_x, age


def _bgnbd_ll_terms(
    log_params: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> FloatArray:
    """Per-customer log-likelihood, computed with log-sum-exp so heavy buyers don't overflow."""
    r, alpha, a, b = np.exp(log_params)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    term_alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + age)
    has_repeat = x > 0
    # b + x - 1 > 0 wherever x >= 1; use a dummy argument elsewhere to avoid log(<=0).
    xr = np.where(has_repeat, x, 1.0)
    term_dropped = np.where(
        has_repeat,
        betaln(a + 1.0, b + xr - 1.0) - betaln(a, b) - (r + xr) * np.log(alpha + t_x),
        -np.inf,
    )
    result: FloatArray = common + np.logaddexp(term_alive, term_dropped)
    return result


def bgnbd_log_likelihood(
    params: BgNbdParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
) -> float:
    """Total BG/NBD log-likelihood of the sample (FHL 2005 report -9582.4 for CDNOW)."""
    x, t_x, age = _check_rfm(frequency, recency, T)
    log_params = np.log(np.array([params.r, params.alpha, params.a, params.b]))
    return float(np.sum(_bgnbd_ll_terms(log_params, x, t_x, age)))


def _check_spend(
    frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Keep repeat customers only (the model conditions on x > 0) and validate spends."""
    x = _as_vector("frequency", frequency)
    m = _as_vector("monetary_value", monetary_value)
    if x.shape != m.shape:
        raise FitError(
            f"frequency and monetary_value must have equal length, got {x.size}, {m.size}"
        )
    i = _first_bad((x < 0) | (x != np.floor(x)))
    if i is not None:
        raise FitError(f"customer index {i}: frequency must be a whole number >= 0, got {x[i]!r}")
    i = _first_bad((x > 0) & (m <= 0))
    if i is not None:
        raise FitError(
            f"customer index {i}: monetary_value must be > 0 for a repeat customer, got {m[i]!r}"
        )
    keep = x > 0
    if not np.any(keep):
        raise FitError("no customers with frequency > 0: Gamma-Gamma needs repeat spends")
    return x[keep], m[keep]


def _gamma_gamma_ll_terms(log_params: FloatArray, x: FloatArray, m: FloatArray) -> FloatArray:
    p, q, v = np.exp(log_params)
    px = p * x
    result: FloatArray = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(v + m * x)
    )
    return result


def gamma_gamma_log_likelihood(
    params: GammaGammaParams, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> float:
    """Total Gamma-Gamma log-likelihood over the customers with frequency > 0."""
    x, m = _check_spend(frequency, monetary_value)
    log_params = np.log(np.array([params.p, params.q, params.v]))
    return float(np.sum(_gamma_gamma_ll_terms(log_params, x, m)))


def _minimise(objective: Callable[[FloatArray], float], start: FloatArray, what: str) -> FloatArray:
    """Nelder-Mead on log-params, restarted from its optimum until it stops improving."""
    best = start.astype(np.float64)
    best_value = objective(best)
    if not np.isfinite(best_value):
        raise FitError(f"{what}: objective is not finite at the starting point")
    options = {"xatol": _XATOL, "fatol": _FATOL, "maxiter": 20_000, "maxfev": 40_000}
    for _ in range(_MAX_RESTARTS):
        res = minimize(objective, best, method="Nelder-Mead", options=options)
        if not res.success:
            raise FitError(f"{what}: optimiser did not converge: {res.message}")
        improved = best_value - float(res.fun)
        best, best_value = np.asarray(res.x, dtype=np.float64), float(res.fun)
        if improved <= _FATOL:
            break
    if not np.all(np.isfinite(best)) or np.any(np.abs(best) > 30.0):
        # exp(30) ~ 1e13: the likelihood is flat in some direction (e.g. nobody drops
        # out), so the "estimate" is meaningless -- say so instead of returning it.
        raise FitError(f"{what}: parameters diverged (log-params {best.tolist()})")
    return best


def fit_bgnbd(frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters from per-customer (x, t_x, T) summaries.

    ``frequency`` = repeat purchases, ``recency`` = age at last purchase, ``T`` = age at
    the end of observation, all in one time unit (the unit the parameters will be in).
    """
    x, t_x, age = _check_rfm(frequency, recency, T)
    n = float(x.size)

    def objective(log_params: FloatArray) -> float:
        value = -float(np.sum(_bgnbd_ll_terms(log_params, x, t_x, age))) / n
        return value if np.isfinite(value) else np.inf

    # Start at r = 1, a = 1, b = 1 and alpha at the scale of the observation window, so
    # the start is sensible whatever time unit the data are in.
    start = np.array([0.0, np.log(float(np.mean(age))), 0.0, 0.0])
    r, alpha, a, b = np.exp(_minimise(objective, start, "BG/NBD fit"))
    return BgNbdParams(r=float(r), alpha=float(alpha), a=float(a), b=float(b))


def fit_gamma_gamma(frequency: npt.ArrayLike, monetary_value: npt.ArrayLike) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters from repeat customers' mean spends.

    Customers with ``frequency == 0`` are ignored (their ``monetary_value`` is
    meaningless, conventionally 0). As Fader & Hardie stress, the model assumes spend
    is independent of purchase frequency; check that correlation before relying on it.
    """
    x, m = _check_spend(frequency, monetary_value)
    n = float(x.size)

    def objective(log_params: FloatArray) -> float:
        value = -float(np.sum(_gamma_gamma_ll_terms(log_params, x, m))) / n
        return value if np.isfinite(value) else np.inf

    # p = 1, q = 2 and v chosen so the prior mean p*v/(q-1) equals the sample mean.
    start = np.array([0.0, np.log(2.0), np.log(float(np.mean(m)))])
    p, q, v = np.exp(_minimise(objective, start, "Gamma-Gamma fit"))
    if q <= 1.0:
        raise FitError(f"Gamma-Gamma fit: q = {q:.4g} <= 1 gives no finite mean spend")
    return GammaGammaParams(p=float(p), q=float(q), v=float(v))
