"""AUM concentration: the top share the worker's gauge and the report both show."""

from __future__ import annotations

from decimal import Decimal

import pytest

from streams.concentration import top_share

D = Decimal


def test_top_share_exact_on_a_known_bank() -> None:
    # 8 customers with 1,000 and 2 with 46,000: the top 20% (2 of 10) hold 92/100.
    values = [D("1000.00")] * 8 + [D("46000.00")] * 2
    assert top_share(values) == pytest.approx(0.92)
    assert top_share(values, 0.1) == pytest.approx(0.46)
    assert top_share(values, 1.0) == 1.0


def test_top_share_small_banks_negatives_and_empty() -> None:
    # ceil(3 * 0.2) = 1 customer; an overdraft counts as zero, not as negative assets.
    assert top_share([D("1"), D("2"), D("7")]) == pytest.approx(0.7)
    assert top_share([D("-50"), D("10"), D("30")]) == pytest.approx(0.75)
    assert top_share([]) == 0.0
    assert top_share([D("0"), D("0")]) == 0.0
    with pytest.raises(ValueError, match="share"):
        top_share([D("1")], 0.0)


def test_top_share_is_exact_for_money_that_floats_get_wrong() -> None:
    # 0.1 + 0.2 in floats is not 0.3; in Decimal the top share of these is exactly 0.5.
    values = [D("0.1"), D("0.2"), D("0.3")]
    assert top_share(values) == 0.5
