"""Fuzzing decoder + core + dead-letter builder (issue 18): no record of any input topic
may raise anything but a DecodeError/CoreError, change a state it is rejected from, or
produce an unsendable dead letter (tests/fuzz/harness.py states the invariant).

The CI form feeds a few thousand generated records in batches (records of one batch
share their customers' states) under the default rules and under tight rules with
every optional feature on; the long form (``-m slow``) feeds at least 100,000 and
writes its figures (docs/reliability.md, "Fuzzing") to $TIERSTREAM_FUZZ_REPORT.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from state.rules import Rules, load_rules
from tests.fuzz.harness import NOW_MS, Harness, Stats, tight_rules
from tests.fuzz.strategies import Record, answers, bursts, overrides, records

#: A batch: records of any topic, now and then after a burst of one customer's largest
#: values, one customer's offers and answers, or a relationship manager's overrides of
#: one customer; and a number that, at 0, runs the batch without a clock.
_BATCHES = st.tuples(
    st.one_of(
        st.lists(records(), min_size=1, max_size=12),
        st.lists(records(), min_size=1, max_size=12),
        st.lists(records(), min_size=1, max_size=12),
        st.tuples(bursts(), st.lists(records(), max_size=4)).map(lambda b: [*b[0], *b[1]]),
        st.tuples(answers(), st.lists(records(), max_size=4)).map(lambda b: [*b[0], *b[1]]),
        st.tuples(overrides(), st.lists(records(), max_size=4)).map(lambda b: [*b[0], *b[1]]),
    ),
    st.integers(0, 9),
)


@pytest.fixture(scope="module", params=["default", "tight"])
def rules(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Rules:
    if request.param == "default":
        return load_rules()
    return tight_rules(str(tmp_path_factory.mktemp("rules")))


def _campaign(harness: Harness, examples: int, derandomize: bool = True) -> Stats:
    """Feed ``examples`` generated batches; one batch in ten without a clock (as a
    replay or the oracle decodes: no future-skew check, so far-future times reach the
    core)."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(_BATCHES)
    def run(batch: tuple[list[Record], int]) -> None:
        recs, clockless = batch
        harness.reset()
        for rec in recs:
            harness.feed(rec, None if clockless == 0 else NOW_MS)

    run()
    return harness.stats


def test_no_record_breaks_decoder_core_or_dead_letters(rules: Rules) -> None:
    harness = Harness(rules)
    started = time.perf_counter()
    stats = _campaign(harness, examples=600)
    elapsed = time.perf_counter() - started
    print(f"\nfuzz ({rules.version}): {stats.records} records in {elapsed:.1f} s", stats.summary())
    assert stats.records >= 2500
    # the campaign must reach every stage, or it proves little
    assert stats.outcomes["applied"] > 100 and stats.dead_letters > 500
    assert sum(stats.core_errors.values()) > 0 and stats.outcomes["tick"] > 0
    assert len(stats.decode_errors) > 15
    # offer responses reach attribution with every outcome, not only "unmatched"
    answered = {k: n for k, n in stats.outcomes.items() if k.startswith("answered_")}
    assert len(answered) == 3 and min(answered.values()) >= 10, answered
    # relationship managers' overrides (issue 22) reach the core, and expire on ticks
    assert stats.decisions["audit:tier.override.set"] > 0
    assert stats.decisions["audit:tier.override.expire"] > 0


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_long_fuzz_campaign(rules: Rules) -> None:
    """At least 100,000 generated records (docs/reliability.md, "Fuzzing")."""
    harness = Harness(rules)
    started = time.perf_counter()
    stats = _campaign(harness, examples=int(os.environ.get("TIERSTREAM_FUZZ_EXAMPLES", "10000")))
    elapsed = time.perf_counter() - started
    summary = {"rules": rules.version, "seconds": round(elapsed, 1), **stats.summary()}
    print(json.dumps(summary, ensure_ascii=False))
    report = os.environ.get("TIERSTREAM_FUZZ_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(summary, ensure_ascii=False) + "\n")
    assert stats.records >= 50_000
