"""The live view's pure parts: reading /metrics text, the panels that follow the bank
through simulated months, what the summary reports, the keys and the screenshot."""

from __future__ import annotations

import io
import os
import pty
import termios
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console

from state.rules import load_rules
from streams.metrics import Metrics
from streams.settings import Settings
from streams.tools.live_panels import SimClock, default_panels
from streams.tools.live_view import (
    KeyReader,
    ReportWriter,
    ViewState,
    parse_metrics,
    render,
    save_screenshot,
    sim_start_ms,
    status_line,
)
from streams.tools.report import LoadedProfiles, parse_profile

RULES = load_rules()

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
    m.offers.labels("wealth_products", "affluent").inc(4)
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


# -- the panels that follow the bank through simulated months (live_panels.py) ---------

START = sim_start_ms("2026-01-01", RULES.timezone)


def _state() -> ViewState:
    return ViewState(panels=default_panels(RULES, START), tz=ZoneInfo(RULES.timezone))


def _decision(kind: str, ts: str, trigger: str = "", **kw: object) -> dict[str, object]:
    reason = {"trigger": trigger} if trigger else {}
    return {"kind": kind, "ts": ts, "customer_id": "C0000007", "reason": reason, **kw}


def test_decisions_by_kind_with_their_time_triggers_and_the_simulated_time() -> None:
    clock = [100.0]
    state = _state()
    state.panels[0] = SimClock(ZoneInfo(RULES.timezone), START, clock=lambda: clock[0])
    clock[0] = 102.0
    state.apply_output(
        "tier-changes",
        {"direction": "initial", "ts": "2026-01-01T00:00:00.000Z", "to_tier": "hnw"},
    )
    clock[0] = 132.0
    state.apply_output(
        "offers", _decision("birthday_greeting", "2026-02-14T16:00:00.000Z", "birthday:2026")
    )
    state.apply_output(
        "offers", _decision("spring_festival", "2026-02-01T16:00:00.000Z", "campaign:spring")
    )
    state.apply_output(
        "offers", _decision("risk_assessment_due", "2026-02-01T17:00:00.000Z", "investment_buy")
    )
    state.apply_output(
        "alerts",
        _decision(
            "dormant_high_value",
            "2026-01-30T16:00:00.000Z",
            "dormancy:2026-01-31",
            severity="warning",
        ),
    )
    state.apply_output("dead-letters", {"source_topic": "t", "offset": 1, "error": "$.x: bad"})
    summary = state.summary(URLS)

    decisions = summary["decisions"]
    assert decisions["tier_directions"] == {"initial": 1}
    assert decisions["offers"] == {
        "birthday_greeting": 1,
        "risk_assessment_due": 1,
        "spring_festival": 1,
    }
    assert decisions["alerts"] == {"dormant_high_value": 1}
    # only timers count as time-driven: "investment_buy" is an input event's trigger
    assert decisions["triggers"] == {"birthday": 1, "campaign": 1, "dormancy": 1}
    sim = summary["simulated"]
    assert sim["time"] == "2026-02-15 00:00"  # the newest decision, in the bank's zone
    assert sim["days"] == 45.0 and sim["first_decision_s"] == 2.0
    assert sim["first_day_done_s"] == 32.0
    assert sim["days_per_minute"] == 90.0  # 45 days in the 30 s since the first decision
    screen = _screen(state)
    assert "2026-02-15 00:00" in screen and "day 45" in screen
    assert "assessment_expiry" in screen  # kinds still to come are listed too
    assert "dormant_high_value" in screen and "dormancy" in screen


def test_latest_offer_and_alert_of_each_kind_keeps_rare_kinds_in_sight() -> None:
    state = _state()
    state.apply_output(
        "alerts", _decision("churn_risk", "2026-03-01T00:00:00.000Z", severity="critical")
    )
    for i in range(50):
        state.apply_output(
            "alerts",
            _decision("large_outflow", f"2026-03-02T00:{i:02d}:00.000Z", severity="warning"),
        )
    screen = _screen(state)
    assert "churn_risk" in screen and "large_outflow" in screen
    assert "2026-03-01 08:00" in screen  # shown in the bank's time zone (+08:00)


def test_customer_value_reads_the_profiles_as_the_report_does() -> None:
    state = _state()
    rows = [
        parse_profile(
            "M1", {"tier": "mass", "p_alive": "0.01", "rfm_segment": "lost", "r_score": "1"}
        ),
        parse_profile(
            "A1",
            {
                "tier": "affluent",
                "aum_cny": "600000",
                "p_alive": "0.10",
                "clv": "5.00",
                "rfm_segment": "at_risk",
            },
        ),
        parse_profile(
            "H1",
            {"tier": "hnw", "aum_cny": "2500000", "p_alive": "0.90", "rfm_segment": "champions"},
        ),
        parse_profile("P1", {"tier": "private", "aum_cny": "9000000"}),
    ]
    state.apply_profiles(LoadedProfiles(rows=rows))
    value = state.summary(URLS)["customer_value"]
    assert (value["profiles"], value["with_rfm"], value["with_p_alive"], value["with_clv"]) == (
        4,
        3,
        3,
        1,
    )
    assert value["rfm_segments"]["lost"] == 1 and value["rfm_segments"]["champions"] == 1
    # at churn risk: high value (mass is not) and below the rules' line (0.3)
    assert value["churn_line"] == "0.3" and value["churn_risk_customers"] == 1
    assert [r["customer_id"] for r in value["churn_risk_top"]] == ["A1"]
    screen = _screen(state)
    assert "1 high-value customers at churn risk" in screen and "600.0k" in screen


def test_keys_are_read_from_a_terminal_without_blocking_and_not_otherwise() -> None:
    with KeyReader(io.StringIO()) as keys:  # no file descriptor: no keys
        assert not keys.active and keys.read() == ""
    r, w = os.pipe()
    with os.fdopen(r) as pipe, KeyReader(pipe) as keys:  # a pipe is no terminal
        os.write(w, b"r")
        assert not keys.active and keys.read() == ""
    os.close(w)
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    with os.fdopen(slave) as tty_file:
        with KeyReader(tty_file) as keys:
            assert keys.active and keys.read() == ""  # nothing pressed: returns at once
            os.write(master, b"rq")
            assert keys.read() == "rq"  # no Enter needed (cbreak)
        assert termios.tcgetattr(tty_file.fileno()) == before  # the terminal is restored
    os.close(master)


def test_screenshot_is_an_svg_of_the_screen_without_the_token(tmp_path: Path) -> None:
    state = _state()
    state.worker_up = True
    path = tmp_path / "img" / "live.svg"
    save_screenshot(state, URLS, path)
    svg = path.read_text()
    assert svg.startswith("<svg") and "SECRET" not in svg
    assert "Bearer" in svg and "write&#160;the&#160;report" in svg


def test_report_key_without_a_report_dir_says_what_to_do() -> None:
    writer = ReportWriter(Settings(), None)
    writer.start()
    assert "tierstream report --out" in writer.status


def _screen(state: ViewState) -> str:
    console = Console(width=170, record=True, force_terminal=False)
    console.print(render(state, URLS))
    return console.export_text()
