"""streams/metrics.py: the batch observer must expose exactly what observe() would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.metrics import Metrics, observe_many

VALUES = [0.0, 0.0004, 0.001, 0.0011, 0.05, 0.05, 0.0999, 0.1, 2.0, 29.0, 31.0, 1e6]


def _pair() -> tuple[CollectorRegistry, Histogram, CollectorRegistry, Histogram]:
    buckets = (0.001, 0.01, 0.05, 0.1, 1, 30)
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    return (
        r1,
        Histogram("h", "h", buckets=buckets, registry=r1),
        r2,
        Histogram("h", "h", buckets=buckets, registry=r2),
    )


@pytest.mark.parametrize("values", [VALUES, [], [0.05], VALUES[::-1] * 3])
def test_observe_many_equals_one_observe_per_value(values: list[float]) -> None:
    r1, one_by_one, r2, batched = _pair()
    for v in values:
        one_by_one.observe(v)
    observe_many(batched, values)
    assert _samples(r2) == _samples(r1)
    assert any(line.startswith("h_bucket") for line in _samples(r1))


def _samples(registry: CollectorRegistry) -> list[str]:
    """The exposition without the creation time (the two histograms differ only there)."""
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if not line.startswith("h_created")
    ]


def test_observe_many_on_the_worker_histograms() -> None:
    m = Metrics()
    observe_many(m.aligner_hold, [0.002, 0.2])
    observe_many(m.intake_age, [0.003])
    text = generate_latest(m.registry).decode()
    assert 'tierstream_aligner_hold_seconds_bucket{le="0.0025"} 1.0' in text
    assert 'tierstream_aligner_hold_seconds_bucket{le="0.25"} 2.0' in text
    assert "tierstream_aligner_hold_seconds_count 2.0" in text
    assert 'tierstream_input_age_at_intake_seconds_bucket{le="0.005"} 1.0' in text
