"""The test harness itself: its reads must fail loudly rather than return less."""

from __future__ import annotations

import pytest

from streams.settings import Settings
from tests.integration.harness import consume_all, produce


def test_consume_all_reads_to_the_end_or_fails(service_settings: Settings) -> None:
    """A read that runs out of time must fail: the old helper returned whatever it had
    read by then, so every "nothing else was emitted" check could pass by timing out."""
    settings = service_settings
    n = produce(settings, (("alerts", b"k%d" % i, b'{"n": %d}' % i) for i in range(2000)))
    with pytest.raises(AssertionError, match="did not reach the end offsets"):
        consume_all(settings, "alerts", timeout=0)
    got = consume_all(settings, "alerts", timeout=30)
    assert sorted(r["value"]["n"] for r in got) == list(range(n))
