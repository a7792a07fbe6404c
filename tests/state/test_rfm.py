"""RFM scores at their cut-offs and the segment table."""

from __future__ import annotations

import pytest

from state.rfm import SEGMENTS, f_score, m_score, r_score, segment
from tests.state.helpers import RULES


@pytest.mark.parametrize(
    ("days", "score"),
    [(0, 5), (7, 5), (8, 4), (14, 4), (15, 3), (30, 3), (31, 2), (60, 2), (61, 1)],
)
def test_recency_score(days: int, score: int) -> None:
    assert r_score(days, RULES) == score


@pytest.mark.parametrize(
    ("n", "score"), [(0, 1), (1, 1), (2, 2), (4, 2), (5, 3), (10, 4), (19, 4), (20, 5)]
)
def test_frequency_score(n: int, score: int) -> None:
    assert f_score(n, RULES) == score


@pytest.mark.parametrize(
    ("fen", "score"),
    [
        (0, 1),
        (99_999, 1),
        (100_000, 2),
        (1_000_000, 3),
        (5_000_000, 4),
        (19_999_999, 4),
        (20_000_000, 5),
    ],
)
def test_monetary_score(fen: int, score: int) -> None:
    assert m_score(fen, RULES) == score


@pytest.mark.parametrize(
    ("r", "f", "m", "name"),
    [
        (5, 5, 1, "champions"),
        (4, 4, 4, "champions"),
        (5, 1, 5, "new"),
        (4, 3, 2, "loyal"),
        (3, 5, 5, "loyal"),
        (4, 2, 2, "potential"),
        (3, 1, 1, "potential"),
        (2, 4, 4, "cant_lose"),
        (1, 5, 5, "cant_lose"),
        (2, 4, 3, "at_risk"),
        (1, 3, 1, "at_risk"),
        (2, 2, 5, "hibernating"),
        (1, 2, 5, "lost"),
        (1, 1, 1, "lost"),
    ],
)
def test_segments(r: int, f: int, m: int, name: str) -> None:
    assert segment(r, f, m) == name


def test_every_score_combination_has_a_named_segment() -> None:
    names = {segment(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}
    assert names == set(SEGMENTS)
