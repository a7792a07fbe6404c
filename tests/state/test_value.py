"""Scoring maths in state.value against closed forms, high-precision and published values.

Reference values come from three independent places, so a bug cannot hide behind a
test that re-implements the same code:

* closed forms written out in the test (P(alive), Gamma-Gamma, telescoping CLV);
* 50-digit mpmath evaluations of FHL (2005) eq. (10) with the raw 2F1 (the numbers
  are pinned below; mpmath is not a project dependency);
* numbers printed in the lifetimes README for the CDNOW data (t = 1 week
  predictions, conditional average profit, 12-month CLV at 1%/month), and the 1.226
  expected purchases in 39 weeks for CDNOW customer 1 from Fader, Hardie & Lee.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import hyp2f1

from state.value import (
    BgNbdParams,
    GammaGammaParams,
    clv,
    expected_avg_spend,
    expected_purchases,
    p_alive,
)

# Full-precision CDNOW maximum-likelihood estimates (what state.clv_fit produces;
# rounded: r=0.243, alpha=4.414, a=0.793, b=2.426 and p=6.25, q=3.74, v=15.45).
CDNOW_BG = BgNbdParams(
    r=0.24259290411491125, alpha=4.413531559002835, a=0.7928861441919922, b=2.4257533159422833
)
CDNOW_GG = GammaGammaParams(p=6.248801754962143, q=3.7445883565374896, v=15.447749345417497)


# ---------------------------------------------------------------------------- P(alive)


@pytest.mark.parametrize("t_x", [0.0, 3.5, 38.86])
def test_p_alive_is_one_without_repeat_purchases(t_x: float) -> None:
    assert p_alive(0, t_x, 38.86, CDNOW_BG) == 1.0


@pytest.mark.parametrize(
    ("x", "t_x", "T", "params", "expected"),
    [
        # 1 / (1 + 2/(3+1-1) * ((1+10)/(1+5))^(1+1)) = 1 / (1 + (2/3) * (11/6)^2)
        (
            1,
            5.0,
            10.0,
            BgNbdParams(r=1.0, alpha=1.0, a=2.0, b=3.0),
            1 / (1 + (2 / 3) * (11 / 6) ** 2),
        ),
        # bought at the very end (t_x == T): odds are a/(b+x-1) = 0.5/(1.5+4-1) = 1/9
        (4, 20.0, 20.0, BgNbdParams(r=2.0, alpha=3.0, a=0.5, b=1.5), 1 / (1 + 1 / 9)),
        # 1 / (1 + 1/(1+2-1) * ((2+4)/(2+0))^(0.5+2)) = 1 / (1 + 0.5 * 3^2.5)
        (2, 0.0, 4.0, BgNbdParams(r=0.5, alpha=2.0, a=1.0, b=1.0), 1 / (1 + 0.5 * 3**2.5)),
    ],
)
def test_p_alive_matches_hand_computed_closed_form(
    x: float, t_x: float, T: float, params: BgNbdParams, expected: float
) -> None:
    assert p_alive(x, t_x, T, params) == pytest.approx(expected, rel=1e-14)


def test_p_alive_cdnow_customer_1() -> None:
    # x=2, t_x=30.43, T=38.86 written out with the CDNOW estimates.
    p = CDNOW_BG
    odds = p.a / (p.b + 2 - 1) * ((p.alpha + 38.86) / (p.alpha + 30.43)) ** (p.r + 2)
    assert p_alive(2, 30.43, 38.86, p) == pytest.approx(1 / (1 + odds), rel=1e-14)
    assert p_alive(2, 30.43, 38.86, p) == pytest.approx(0.72661, abs=1e-5)


def test_p_alive_heavy_buyer_does_not_overflow() -> None:
    # ((alpha+T)/(alpha+t_x))^(r+x) = (42/9)^5000 overflows a float; the log form must not.
    assert p_alive(5000, 5.0, 38.0, CDNOW_BG) == 0.0
    recent = p_alive(5000, 38.0, 38.0, CDNOW_BG)
    assert recent == pytest.approx(1 / (1 + CDNOW_BG.a / (CDNOW_BG.b + 4999)), rel=1e-12)


def test_p_alive_falls_with_time_since_last_purchase() -> None:
    values = [p_alive(3, t_x, 40.0, CDNOW_BG) for t_x in (40.0, 30.0, 20.0, 10.0, 1.0)]
    assert all(a > b for a, b in itertools.pairwise(values))


# ------------------------------------------------------------------ expected purchases


# (t, x, t_x, T, params, 50-digit mpmath value of FHL eq. 10 with the raw 2F1)
_MPMATH_GOLDEN = [
    (1e-6, 3, 3.0, 10.0, BgNbdParams(0.243, 4.414, 0.793, 2.426), 8.8319182514079168e-08),
    (10.0, 300, 25.0, 30.0, BgNbdParams(0.243, 4.414, 0.793, 2.426), 1.0115112104608930e-16),
    # a == 1 exactly: removable singularity of (...)/(a-1), evaluated at a = 1 + 1e-20
    (10.0, 2, 5.0, 30.0, BgNbdParams(0.5, 3.0, 1.0, 2.0), 0.054920241779806186),
]


@pytest.mark.parametrize(("t", "x", "t_x", "T", "params", "expected"), _MPMATH_GOLDEN)
def test_expected_purchases_matches_high_precision_reference(
    t: float, x: float, t_x: float, T: float, params: BgNbdParams, expected: float
) -> None:
    assert expected_purchases(t, x, t_x, T, params) == pytest.approx(expected, rel=1e-12)


def _scipy_reference(t: float, x: float, t_x: float, T: float, p: BgNbdParams) -> float:
    """FHL (2005) eq. (10) verbatim, with scipy's hyp2f1."""
    z = t / (p.alpha + T + t)
    hyp = hyp2f1(p.r + x, p.b + x, p.a + p.b + x - 1, z)
    numerator = (
        (p.a + p.b + x - 1)
        / (p.a - 1)
        * (1 - ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x) * hyp)
    )
    odds = p.a / (p.b + x - 1) * ((p.alpha + T) / (p.alpha + t_x)) ** (p.r + x) if x > 0 else 0.0
    return float(numerator / (1 + odds))


@settings(max_examples=150, deadline=None)
@given(
    x=st.integers(min_value=0, max_value=25),
    T=st.floats(min_value=1.0, max_value=100.0),
    frac=st.floats(min_value=0.0, max_value=1.0),
    t=st.floats(min_value=0.5, max_value=60.0),
    r=st.floats(min_value=0.1, max_value=3.0),
    alpha=st.floats(min_value=0.5, max_value=20.0),
    a=st.floats(min_value=0.2, max_value=5.0).filter(lambda v: abs(v - 1.0) > 1e-3),
    b=st.floats(min_value=1.0, max_value=8.0),  # a + b > 1: see the limitation test
)
def test_expected_purchases_agrees_with_textbook_formula(
    x: int, T: float, frac: float, t: float, r: float, alpha: float, a: float, b: float
) -> None:
    params = BgNbdParams(r=r, alpha=alpha, a=a, b=b)
    t_x = 0.0 if x == 0 else frac * T
    expected = _scipy_reference(t, x, t_x, T, params)
    assert expected_purchases(t, x, t_x, T, params) == pytest.approx(expected, rel=1e-7, abs=1e-12)


@pytest.mark.parametrize(
    ("x", "t_x", "T", "expected"),
    [  # lifetimes README: predicted purchases in the next week, top CDNOW customers
        (18, 35.14, 35.86, 0.424877),
        (19, 34.00, 34.14, 0.474738),
        (17, 28.43, 28.86, 0.486526),
        (29, 37.71, 38.00, 0.662396),
        (26, 30.86, 31.00, 0.710623),
    ],
)
def test_expected_purchases_reproduces_published_cdnow_predictions(
    x: float, t_x: float, T: float, expected: float
) -> None:
    assert expected_purchases(1.0, x, t_x, T, CDNOW_BG) == pytest.approx(expected, abs=2e-6)


def test_expected_purchases_fhl_customer_1_next_39_weeks() -> None:
    # Fader, Hardie & Lee: CDNOW customer with x=2, t_x=30.43, T=38.86 -> 1.226
    assert round(expected_purchases(39.0, 2, 30.43, 38.86, CDNOW_BG), 3) == 1.226


def test_expected_purchases_is_zero_at_zero_and_increasing_in_t() -> None:
    assert expected_purchases(0.0, 2, 30.43, 38.86, CDNOW_BG) == 0.0
    values = [expected_purchases(float(t), 2, 30.43, 38.86, CDNOW_BG) for t in (1, 5, 26, 52, 520)]
    assert all(0 < a < b for a, b in itertools.pairwise(values))


def test_expected_purchases_far_horizon_converges() -> None:
    # z = t/(alpha+T+t) = 0.999: the 2F1 series needs thousands of terms but must finish.
    far = expected_purchases(40_000.0, 3, 30.0, 35.0, CDNOW_BG)
    assert far == pytest.approx(_scipy_reference(40_000.0, 3, 30.0, 35.0, CDNOW_BG), rel=1e-6)


@pytest.mark.parametrize(
    "call",
    [
        lambda: p_alive(-1, 0.0, 1.0, CDNOW_BG),
        lambda: p_alive(2, 5.0, 4.0, CDNOW_BG),  # t_x > T
        lambda: p_alive(2, -1.0, 4.0, CDNOW_BG),
        lambda: p_alive(math.nan, 1.0, 4.0, CDNOW_BG),
        lambda: expected_purchases(-1.0, 2, 1.0, 4.0, CDNOW_BG),
        # documented limitation: FHL eq. (10) needs a + b + x - 1 > 0
        lambda: expected_purchases(1.0, 0, 0.0, 4.0, BgNbdParams(r=1.0, alpha=1.0, a=0.2, b=0.8)),
        lambda: BgNbdParams(r=0.0, alpha=1.0, a=1.0, b=1.0),
        lambda: BgNbdParams(r=1.0, alpha=math.inf, a=1.0, b=1.0),
        lambda: GammaGammaParams(p=1.0, q=1.0, v=1.0),  # q <= 1: no finite mean
        lambda: expected_avg_spend(2, -0.01, CDNOW_GG),
        lambda: clv(2, 1.0, 4.0, 10.0, CDNOW_BG, CDNOW_GG, -1, 0.0),
        lambda: clv(2, 1.0, 4.0, 10.0, CDNOW_BG, CDNOW_GG, 12, -1.0),
    ],
)
def test_invalid_inputs_are_rejected(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError):
        call()


# ------------------------------------------------------------------------ Gamma-Gamma


def test_expected_avg_spend_without_transactions_is_population_mean() -> None:
    gg = GammaGammaParams(p=6.0, q=4.0, v=15.0)
    assert expected_avg_spend(0, 123.0, gg) == pytest.approx(6.0 * 15.0 / 3.0)


def test_expected_avg_spend_is_the_credibility_weighted_mean() -> None:
    gg = GammaGammaParams(p=2.0, q=3.0, v=10.0)
    # weight on own mean = p x / (p x + q - 1) = 8/10 ; population mean = p v/(q-1) = 10
    assert expected_avg_spend(4, 50.0, gg) == pytest.approx(0.8 * 50.0 + 0.2 * 10.0)


@pytest.mark.parametrize(
    ("x", "m", "expected"),
    [  # lifetimes README, conditional_expected_average_profit on CDNOW
        (2, 22.35, 24.658619),
        (1, 11.77, 18.911489),
        (0, 0.0, 35.170981),
        (7, 73.74, 71.462843),
        (2, 25.55, 27.282408),
    ],
)
def test_expected_avg_spend_reproduces_published_cdnow_values(
    x: float, m: float, expected: float
) -> None:
    assert expected_avg_spend(x, m, CDNOW_GG) == pytest.approx(expected, rel=1e-6)


# -------------------------------------------------------------------------------- CLV


def test_undiscounted_clv_telescopes_to_expected_purchases_times_spend() -> None:
    x, t_x, T, m = 2, 30.43, 38.86, 22.35
    total = clv(x, t_x, T, m, CDNOW_BG, CDNOW_GG, 52, 0.0)
    expected = expected_purchases(52.0, x, t_x, T, CDNOW_BG) * expected_avg_spend(x, m, CDNOW_GG)
    assert total == pytest.approx(expected, rel=1e-12)


def test_clv_discounts_each_period() -> None:
    x, t_x, T, m = 2, 30.43, 38.86, 22.35
    spend = expected_avg_spend(x, m, CDNOW_GG)
    by_hand = sum(
        (
            expected_purchases(float(k), x, t_x, T, CDNOW_BG)
            - expected_purchases(float(k - 1), x, t_x, T, CDNOW_BG)
        )
        * spend
        / 1.05**k
        for k in range(1, 6)
    )
    assert clv(x, t_x, T, m, CDNOW_BG, CDNOW_GG, 5, 0.05) == pytest.approx(by_hand, rel=1e-12)
    assert clv(x, t_x, T, m, CDNOW_BG, CDNOW_GG, 0, 0.05) == 0.0


@pytest.mark.parametrize(
    ("x", "t_x", "T", "m", "expected"),
    [  # lifetimes README: customer_lifetime_value(time=12, discount_rate=0.01) on CDNOW
        (2, 30.43, 38.86, 22.35, 140.096211),
        (1, 1.71, 38.86, 11.77, 18.943467),
        (0, 0.00, 38.86, 0.00, 38.180574),
        (7, 29.43, 38.86, 73.74, 1003.868107),
        (1, 5.00, 38.86, 11.77, 28.109683),
        (2, 35.71, 38.86, 25.55, 167.418216),
    ],
)
def test_clv_reproduces_lifetimes_published_values(
    x: float, t_x: float, T: float, m: float, expected: float
) -> None:
    # lifetimes' default freq="D" makes each of its 12 periods 30 units of the fitting
    # time scale (weeks here). BG/NBD is scale-free in time, so rescaling alpha, t_x and
    # T by 1/30 gives the same model with a 30-week period -- which is what clv() sums.
    scale = 30.0
    bg = BgNbdParams(r=CDNOW_BG.r, alpha=CDNOW_BG.alpha / scale, a=CDNOW_BG.a, b=CDNOW_BG.b)
    value = clv(x, t_x / scale, T / scale, m, bg, CDNOW_GG, 12, 0.01)
    assert value == pytest.approx(expected, rel=1e-6)
