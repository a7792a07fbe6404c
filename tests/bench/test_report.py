"""bench/: the report's arithmetic (ratios over rounds, stage quantiles from /metrics,
the history sweep, one worker against several, before and after).

The benchmark itself reports figures and never passes or fails on them; these tests
only pin that the figures it prints are computed from what it measured.
"""

from __future__ import annotations

import pytest

from bench.common import Throughput, histogram_buckets, histogram_quantile
from bench.report import Report, ratios, render, round_ratios
from bench.run import parse_args, worker_stages
from streams.metrics import Metrics, observe_many


def _thr(name: str, events_per_s: float, cpu_per_1000: float = 0.1) -> Throughput:
    events = 100_000
    seconds = events / events_per_s
    return Throughput(name, events, seconds, cpu_per_1000 * events / 1000, 100 * 2**20)


def _report(rounds: list[dict[str, float]]) -> Report:
    machine = {k: "x" for k in ("cpus", "cpu_model", "ram_gib", "load_avg_at_start")}
    machine |= {"python": "3.11", "kernel": "6"}
    rep = Report(parse_args(["--quick", "--rounds", str(len(rounds))]), machine, "run")
    first, *rest = rounds
    rep.throughput = {k: _thr(k, v) for k, v in first.items()}
    rep.rounds = [{k: _thr(k, v) for k, v in rd.items()} for rd in rest]
    return rep


def test_ratios_are_the_median_over_rounds_with_their_range() -> None:
    rep = _report(
        [
            {"worker": 8000, "baseline": 10000, "peer": 4000},  # 0.80, 2.00
            {"worker": 9000, "baseline": 9000, "peer": 9000},  # 1.00, 1.00
            {"worker": 6000, "baseline": 10000, "peer": 5000},  # 0.60, 1.20
        ]
    )
    assert round_ratios(rep, "baseline") == pytest.approx([0.8, 1.0, 0.6])
    text = ratios(rep)
    assert "worker/baseline throughput: 0.80 (median of 3 rounds, range 0.60–1.00" in text
    assert "worker/peer     throughput: 1.20 (median of 3 rounds, range 1.00–2.00" in text
    page = render(rep)
    assert "| 2 | 9,000 (100) | 9,000 (100) | 9,000 (100) | 1.00 | 1.00 | — |" in page
    assert page.rstrip().endswith("```")  # the ratios come last


def test_a_round_missing_a_system_is_left_out_of_that_ratio() -> None:
    rep = _report([{"worker": 8000, "baseline": 10000}, {"worker": 9000, "peer": 3000}])
    assert round_ratios(rep, "baseline") == pytest.approx([0.8])
    assert round_ratios(rep, "peer") == pytest.approx([3.0])
    assert "median of 1 round;" in ratios(rep)


def test_rounds_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--rounds", "0"])


def test_stage_quantiles_come_from_the_interval_between_two_scrapes() -> None:
    from prometheus_client import generate_latest

    m = Metrics()
    observe_many(m.aligner_hold, [5.0] * 100)  # before the run: must not count
    m.write_duration.labels("outputs").observe(0.2)
    before = generate_latest(m.registry).decode()
    observe_many(m.aligner_hold, [0.002] * 98 + [0.3, 0.3])
    for _ in range(10):
        m.write_duration.labels("outputs").observe(0.004)
        m.write_duration.labels("state").observe(0.04)
    after = generate_latest(m.registry).decode()

    stages = {label: (n, p50, p99) for label, n, p50, p99 in worker_stages(before, after)}
    hold = next(v for k, v in stages.items() if k.startswith("aligner hold"))
    assert hold == (100, 0.0025, 0.5)
    outputs = next(v for k, v in stages.items() if "outputs acked" in k)
    assert outputs == (10, 0.005, 0.005)
    state = next(v for k, v in stages.items() if "changelog acked" in k)
    assert state == (10, 0.05, 0.05)
    age = next(v for k, v in stages.items() if k.startswith("input age"))
    assert age == (0, None, None)


def test_histogram_buckets_selects_one_labelled_series() -> None:
    text = "\n".join(
        [
            'x_bucket{le="0.1",stage="a"} 3.0',
            'x_bucket{le="1.0",stage="a"} 10.0',
            'x_bucket{le="+Inf",stage="a"} 10.0',
            'x_bucket{le="+Inf",stage="b"} 99.0',
        ]
    )
    a = histogram_buckets(text, "x", {"stage": "a"})
    assert a == {0.1: 3.0, 1.0: 10.0, float("inf"): 10.0}
    assert histogram_quantile({}, a, 0.3) == 0.1
    assert histogram_quantile({}, a, 0.31) == 1.0
    assert histogram_quantile(a, a, 0.5) is None


def test_progress_marks_the_half_and_the_second_half_rate() -> None:
    import os

    from bench.common import measure_progress

    seen = iter([0, 10, 40, 60, 90, 100])
    p = measure_progress(os.getpid(), lambda: True, lambda: next(seen), 100, 10, every=0)
    assert p.n_half == 60 and p.t_first <= p.t_half <= p.t_done
    thr = p.throughput("x", 100, 0)
    assert thr.second_half is not None and thr.second_half[0] == 40
    assert thr.second_half[1] == pytest.approx(p.t_done - p.t_half)


def test_second_half_rates_are_reported_under_the_main_table() -> None:
    rep = _report([{"worker": 8000, "baseline": 10000}])
    rep.throughput["worker"].second_half = (50_000, 10.0, 6.0)  # 5,000 events/s
    page = render(rep)
    assert "Second half of each run" in page
    assert "worker 5,000 events/s (120 CPU µs/event)" in page
    assert "baseline" not in page.split("Second half of each run")[1].split("\n")[0]


def test_sweep_scale_and_before_after_tables() -> None:
    from bench.report import PREVIOUS, Scale, Sweep

    rep = _report([{"worker": 8000, "baseline": 10000, "peer": 4000}])
    rep.bank = {"days": 90, "customers": 20_000, "state_mean": 1190.4, "cache": 10_000}
    w = rep.throughput["worker"]
    w.restored, w.restore_s, w.cache_hit_share = 100_000, 3.3, 0.42
    rep.sweep = [
        Sweep(0, 20_000, 330.0, {"cpu_us_per_event": 34.0}, {"worker": _thr("w", 9000, 0.05)}),
        Sweep(
            90,
            20_000,
            1190.0,
            None,
            {"worker": _thr("w", 8000, 0.06), "baseline": _thr("b", 10000, 0.04)},
        ),
    ]
    one, two = _thr("1", 10_000, 0.05), _thr("2", 17_000, 0.06)
    from bench.systems import MachineUse

    use = MachineUse(10.0, 0.95, 12.0, 4.0, 1.0, 2)  # 19 CPU s busy: 2 s other
    rep.scale = [
        Scale(1, one, [5.0]),
        Scale(2, two, [3.0, 3.1], use),
        Scale(2, _thr("2", 12_000, 0.06), [3.0, 3.1], None, 1),
        Scale(1, _thr("1", 8_000, 0.05), [5.0], None, 1),
    ]
    page = render(rep)
    assert "Bank: 20,000 simulated customers with 90 days of history" in page
    assert "(serialized state mean 1,190 B)" in page and "10,000 customers, fewer" in page
    # the main table: restore and cache hit share
    assert "| worker | 8,000 | 100 |" in page and "| 100,000 in 3.3 s | — | 42% |" in page
    # sweep: v3 core figure from the previous design, this core, systems per length
    assert "| fresh | 330 | 52.7 | 34.0 | 50 (9,000) | — |" in page
    assert "| 90 d | 1,190 | 130.3 | — | 60 (8,000) | 40 (10,000) |" in page
    # scale: two workers over one, CPU summed per worker
    assert "| 1 | 2 | 17,000 | 1.70 | 60 | 3.0, 3.1 | 95% of 2 | 12.0 / 4.0 / 1.0 / 2.0 |" in page
    assert "| 2 | 2 | 12,000 | 1.50 | 60 | 3.0, 3.1 | — | — |" in page  # against its round
    # before and after: the previous design's worker next to this run's
    eps, cpu, _p50, p99, rss, _st = PREVIOUS["worker"]
    assert (
        f"| tierstream worker | {eps:,.0f} | {cpu:.0f} | {p99:,.0f} | {rss:,.0f} | 8,000 | 100 |"
        in page
    )
