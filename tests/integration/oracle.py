"""The test oracle: recompute every decision and profile from the input topics.

It reads the inputs back from Kafka (real partitions and offsets, read_committed) and
runs them through the same ``BatchProcessor`` the worker uses, in one batch with every
input caught up — the order the worker's aligner produces when the input is already
in Kafka. Anything the worker emitted that the oracle did not (or vice versa) is a
lost, duplicated or wrong decision.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from schemas.decoder import Decoder
from schemas.events import INPUT_TOPICS, TICK_TOPICS
from state.rules import Rules
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.records import BatchResult, RawMessage
from streams.settings import Settings


def read_inputs(settings: Settings, timeout: float = 30.0) -> list[RawMessage]:
    c = Consumer(
        settings.confluent_config(
            **{
                "group.id": f"oracle-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
    )
    out: list[RawMessage] = []
    try:
        tps: list[TopicPartition] = []
        ends: dict[tuple[str, int], int] = {}
        for name in (*INPUT_TOPICS, *TICK_TOPICS):
            full = settings.topic(name)
            meta = c.list_topics(full, timeout=10).topics[full]
            for p in meta.partitions:
                _lo, hi = c.get_watermark_offsets(TopicPartition(full, p), timeout=10)
                if hi > 0:
                    ends[(full, p)] = hi
                    tps.append(TopicPartition(full, p, 0))
        c.assign(tps)
        contract = {settings.topic(t): t for t in (*INPUT_TOPICS, *TICK_TOPICS)}
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append(
                RawMessage(
                    contract[m.topic()],
                    m.partition(),
                    m.offset(),
                    m.key(),
                    m.value(),
                    m.timestamp()[1],
                    m.topic(),
                )
            )
            if m.offset() + 1 >= ends.get((m.topic(), m.partition()), 0):
                ends.pop((m.topic(), m.partition()), None)
        assert not ends, f"oracle could not read all input: {ends}"
    finally:
        c.close()
    out.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return out


def recompute(
    settings: Settings,
    rules: Rules,
    max_future_skew_ms: int = 300_000,
    msgs: list[RawMessage] | None = None,
) -> BatchResult:
    """The truth for everything in the input topics (or in ``msgs``, read before).

    The future-skew check uses the time of the recomputation: the worker checked each
    record against its own clock when it read it, a little earlier, so only records
    stamped within seconds of the skew limit could be judged differently.
    """
    if msgs is None:
        msgs = read_inputs(settings)
    decoder = Decoder(max_future_skew_ms=max_future_skew_ms)
    return BatchProcessor(rules, decoder).process(
        msgs, lambda _p, _k: None, now_ms=int(time.time() * 1000)
    )


@dataclass
class Comparison:
    lost: list[str]
    duplicated: list[str]
    wrong: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong)


def compare_decisions(
    expected: list[dict[str, Any]], actual: list[dict[str, Any]], *, allow_redelivery: bool
) -> Comparison:
    """Compare output records by event_id: lost, duplicated, or different content."""
    exp = {r["event_id"]: r for r in expected}
    counts = Counter(r["event_id"] for r in actual)
    act = {r["event_id"]: r for r in actual}
    lost = sorted(set(exp) - set(act))
    dup = [] if allow_redelivery else sorted(k for k, n in counts.items() if n > 1)
    wrong = sorted(k for k in set(exp) & set(act) if exp[k] != act[k])
    wrong += sorted(f"unexpected:{k}" for k in set(act) - set(exp))
    return Comparison(lost, dup, wrong)
