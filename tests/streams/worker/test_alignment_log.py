"""Every release that gave up waiting shows in the worker's log, not only in its metric
(a killed worker's metric is gone; its log is not)."""

from __future__ import annotations

import logging

import pytest

import streams.worker.loop
from streams.pipeline.aligner import GaveUp
from streams.settings import Settings
from streams.worker.service import TierstreamService


def test_each_give_up_is_logged_and_only_identical_repeats_are_folded(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = TierstreamService(Settings(store="memory://", redis_url="redis://127.0.0.1:1/0"))
    clock = [1000.0]
    monkeypatch.setattr(streams.worker.loop.time, "monotonic", lambda: clock[0])
    lag3 = GaveUp("lag", 3, (("balances", False),), 2004)
    idle3 = GaveUp("idle", 3, (("balances", None),), 2001)
    lag1 = GaveUp("lag", 1, (("transactions", False), ("ticks", None)), 2010)
    with caplog.at_level(logging.WARNING, logger="tierstream"):
        for g in (lag3, idle3, lag1):  # different partition, inputs or reason: each one
            service.loop._on_alignment_timeout(g)
        clock[0] += 3
        service.loop._on_alignment_timeout(lag3)  # identical within 10 s: folded
        service.loop._on_alignment_timeout(lag3)
        clock[0] += 8
        service.loop._on_alignment_timeout(lag3)  # 11 s after the last line: logged, with count
    lines = [r.getMessage() for r in caplog.records if "gave up waiting" in r.getMessage()]
    assert len(lines) == 4
    assert "balances[3] (has unfetched records) after 2004 ms (lag)" in lines[0]
    assert "balances[3] (end unknown) after 2001 ms (idle)" in lines[1]
    assert "transactions[1] (has unfetched records), ticks[1] (end unknown)" in lines[2]
    assert "2 more like it since the last such line" in lines[3]
    counted = {
        s.labels["reason"]: s.value
        for m in service.metrics.registry.collect()
        for s in m.samples
        if s.name == "tierstream_aligner_timeouts_total"
    }
    assert counted == {"lag": 5.0, "idle": 1.0}
