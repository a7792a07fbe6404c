"""The worker's rules gate without a broker: what it takes up, refuses, counts and logs,
and where it lets events through (streams/worker/rules_gate.py). The reader is a fake
holding the topic's messages; the records are made by the same encoder as ``tierstream
rules publish``."""

from __future__ import annotations

import logging

import pytest

from state.rules import load_rules
from state.timeline import RulesTimeline
from streams.metrics import Metrics
from streams.rules_log import RulesRecord, encode_record
from streams.worker.rules_gate import NOTHING, RulesGate

T = 1_800_000_000_000
GOOD = 'version = "good"\n[tiers]\naffluent = "700000"\n'
BAD = 'version = "bad"\n[tiers]\naffluent = "lots"\n'


class FakeReader:
    """The part of RulesReader the gate uses: the topic read so far, and reading on."""

    __slots__ = ("_topic_log", "messages", "partitions", "topic")

    def __init__(self) -> None:
        self.topic = "rules"
        self.partitions = [0]
        self.messages: list[tuple[int, int, int, bytes | None]] = []
        self._topic_log: list[tuple[int, int, int, bytes | None]] = []

    def append(self, version: str, toml: str, effective_from: int, append_ms: int) -> None:
        rec = RulesRecord(version, "", effective_from, "test", append_ms, toml)
        _key, value = encode_record(rec)
        self._topic_log.append((0, len(self._topic_log), append_ms, value))

    def end_offsets(self) -> dict[int, int]:
        return {0: len(self._topic_log)}

    def caught_up(self, ends: dict[int, int]) -> bool:
        return len(self.messages) >= ends[0]

    def read_until(self, ends: dict[int, int], _timeout: float) -> bool:
        self.messages = list(self._topic_log[: ends[0]])
        return True


async def test_takes_up_a_version_refuses_one_it_cannot_load_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = FakeReader()
    metrics = Metrics()
    timelines: list[RulesTimeline] = []
    gate = RulesGate(reader, load_rules(None), metrics, timelines.append)  # type: ignore[arg-type]
    assert gate.watermark == NOTHING  # nothing may be decided before the first check

    reader.append("good", GOOD, T + 5_000, T)
    caplog.set_level(logging.INFO, logger="tierstream")
    assert await gate.check(reader.end_offsets(), T + 100)
    assert gate.watermark == T + 100
    assert [(v.effective_from, v.rules.version) for v in timelines[-1].versions] == [
        (T + 5_000, "good")
    ]
    assert "rules: version good takes effect from" in caplog.text

    reader.append("bad", BAD, T + 9_000, T + 1_000)
    reader.append("late", GOOD.replace("good", "late"), T + 1_500, T + 1_000)  # backdated
    reader.append("good", GOOD, T + 20_000, T + 1_000)  # published before
    n = len(timelines)
    assert await gate.check(reader.end_offsets(), T + 2_000)
    assert len(timelines) == n  # nothing new in force: no new timeline
    assert gate.history.timeline.at(T + 10_000).version == "good"  # the one before stays
    refused = {
        s.labels["reason"]: s.value
        for f in metrics.registry.collect()
        if f.name == "tierstream_rules_refused"
        for s in f.samples
        if s.name.endswith("_total")
    }
    assert refused == {"load_error": 1.0, "backdated": 1.0, "duplicate": 1.0}
    assert "rules: record 0:1 (version bad) refused, the versions before it stay in force" in (
        caplog.text
    )
    assert "does not load" in caplog.text
    # the version in force at the wall clock is shown, the refused one never
    gate.cutoff(T + 10_000, holding=False)
    info = {
        s.labels["version"]: s.value
        for f in metrics.registry.collect()
        if f.name == "tierstream_rules_version_info"
        for s in f.samples
    }
    assert info == {"good": 1.0}


async def test_events_after_the_last_check_wait_and_a_hold_gives_up_after_max_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = FakeReader()
    gate = RulesGate(reader, load_rules(None), Metrics(), lambda _t: None, max_wait_ms=60_000)  # type: ignore[arg-type]
    assert await gate.check(reader.end_offsets(), T)
    assert gate.cutoff(T + 1_000, holding=True) == T  # held behind the watermark
    assert gate.cutoff(T + 61_000, holding=True) == T
    caplog.set_level(logging.ERROR, logger="tierstream")
    assert gate.cutoff(T + 61_001, holding=True) is None  # decided by the versions known
    assert "no rules check for 60 s" in caplog.text
    assert gate.cutoff(T + 61_002, holding=False) == T
