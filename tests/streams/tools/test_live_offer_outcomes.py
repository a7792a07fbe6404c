"""The live view's offer-outcomes panel (issue 23) on the worker's real exposition."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from rich.console import Console

from state.rules import load_rules
from streams.metrics import Metrics
from streams.tools.live_panels import OfferOutcomes, default_panels
from streams.tools.live_view import ViewState, parse_metrics, render

RULES = load_rules()
URLS = {
    "metrics_url": "http://127.0.0.1:6066/metrics",
    "customer_url": "http://127.0.0.1:6066/customers/C0000001",
    "customer_curl": "curl http://127.0.0.1:6066/customers/C1",
    "health_url": "http://127.0.0.1:6066/health",
}


def test_offer_outcomes_by_kind_with_conversion_and_unmatched_answers() -> None:
    m = Metrics()
    m.offers.labels("wealth_products", "affluent").inc(30)
    m.offers.labels("wealth_products", "hnw").inc(10)
    m.offers.labels("relationship_manager", "hnw").inc(10)
    m.offers.labels("birthday_greeting", "mass").inc(3)
    m.offer_responses.labels("wealth_products", "affluent", "accepted").inc(6)
    m.offer_responses.labels("wealth_products", "hnw", "accepted").inc(2)
    m.offer_responses.labels("wealth_products", "affluent", "declined").inc(12)
    m.offer_responses.labels("relationship_manager", "hnw", "ignored").inc(4)
    m.events.labels("offer-responses", "unmatched").inc(5)
    m.events.labels("offer-responses", "applied").inc(24)
    state = ViewState(panels=default_panels(RULES, None), tz=ZoneInfo(RULES.timezone))
    (panel,) = [p for p in state.panels if isinstance(p, OfferOutcomes)]
    state.apply_metrics(parse_metrics(m.exposition().decode()), now=1.0)

    summary = state.summary(URLS)["offer_outcomes"]
    assert summary["offers"] == {
        "birthday_greeting": 3,
        "relationship_manager": 10,
        "wealth_products": 40,
    }
    assert summary["answers"] == {
        "relationship_manager": {"ignored": 4},
        "wealth_products": {"accepted": 8, "declined": 12},
    }
    assert summary["conversion"] == {
        "birthday_greeting": 0.0,
        "relationship_manager": 0.0,
        "wealth_products": 0.2,
    }
    assert summary["unmatched"] == 5 and panel.conversion("nothing") is None

    console = Console(width=200, record=True, force_terminal=False)
    console.print(render(state, URLS))
    screen = console.export_text()
    assert "offer outcomes" in screen and "20.0%" in screen
    assert "answers: accepted 8  declined 12  ignored 4  5 matched no remembered offer" in screen
    # a row of its own, the kinds side by side
    (line,) = [ln for ln in screen.splitlines() if "birthday_greeting" in ln and "0.0%" in ln]
    assert "relationship_manager" in line and "wealth_products" in line


def test_before_any_offer_the_panel_says_so() -> None:
    panel = OfferOutcomes()
    console = Console(width=80, record=True, force_terminal=False)
    console.print(panel.renderable())
    assert "no offers yet" in console.export_text()
    assert panel.summary() == {"offers": {}, "answers": {}, "conversion": {}, "unmatched": 0}
