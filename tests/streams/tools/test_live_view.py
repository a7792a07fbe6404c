"""The live view's pure parts: reading /metrics text and what the summary reports."""

from __future__ import annotations

from rich.console import Console

from streams.metrics import Metrics
from streams.tools.live_view import ViewState, parse_metrics, render, status_line

URLS = {
    "metrics_url": "http://127.0.0.1:6066/metrics",
    "customer_url": "http://127.0.0.1:6066/customers/C0000001",
    "customer_curl": "curl -H 'Authorization: Bearer SECRET' http://127.0.0.1:6066/customers/C1",
    "health_url": "http://127.0.0.1:6066/health",
}


def test_view_reads_the_workers_real_exposition() -> None:
    m = Metrics()
    m.events.labels("demo-transactions", "applied").inc(90)
    m.events.labels("demo-balances", "dead_letter").inc(10)
    m.dead_letters.labels("transactions", "schema").inc(7)
    m.dead_letters.labels("balances", "json").inc(3)
    m.customers.labels("mass").set(70)
    m.customers.labels("hnw").set(5)
    m.tier_changes.labels("none", "mass").inc(70)
    m.offers.labels("wealth_products").inc(4)
    m.alerts.labels("churn_risk", "warning").inc(2)
    state = ViewState()
    state.apply_metrics(parse_metrics(m.exposition().decode()), now=10.0)
    m.events.labels("demo-transactions", "applied").inc(50)
    state.apply_metrics(parse_metrics(m.exposition().decode()), now=12.0)

    assert state.events == 150 and state.events_per_s == 25.0
    assert state.tiers == {"mass": 70, "hnw": 5}
    assert state.dead_letters == 10 and state.dead_letter_reasons == {"json": 3, "schema": 7}
    assert state.offers == {"wealth_products": 4} and state.alerts == {"churn_risk": 2}
    assert "events=150" in status_line(state) and "dead_letters=10" in status_line(state)


def test_summary_and_screen() -> None:
    state = ViewState()
    state.apply_output("dead-letters", {"source_topic": "t", "offset": 3, "error": "$.x: bad"})
    summary = state.summary(URLS)
    assert summary["seen_on_output_topics"] == {"dead-letters": 1}
    assert "customer_curl" not in summary  # the token stays on the screen only
    console = Console(width=160, record=True, force_terminal=False)
    console.print(render(state, URLS))
    screen = console.export_text()
    assert "waiting for the worker" in screen and "$.x: bad" in screen
