"""The live view's panels that follow the bank through simulated months, and the
extension point for more.

Why panels are objects with one small interface (``Panel``): each takes what it needs
from the three sources the view reads -- the decisions on the output topics, the
worker's ``/metrics`` and the customer profiles in Redis (through the management
report's own figures, streams/tools/report.py) -- and gives back what it draws and its
part of the summary JSON. The view feeds every panel in ``PANELS`` and lays them out;
it knows nothing about what they show (the view's first panels -- throughput, tiers,
counters by kind, latest decisions and dead letters -- predate this and live in
live_view.py).

**Adding a panel** (rules versions in force, ...; offer outcomes are
``OfferOutcomes``, the contribution ``Contribution``): write
a class derived from ``BasePanel`` that overrides the hooks it needs -- ``on_output``
for decisions (every one carries ``rules_version``), ``topics`` to tail another output
topic (an offer-outcomes topic, say), ``on_metrics`` for the worker's counters,
``on_profiles`` for figures over the Redis profiles -- plus ``renderable`` and
``summary``, and ``placement`` to say where it goes; then list it in
``default_panels``. Nothing else in the view changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from schemas.events import OFFER_OUTCOMES
from state.decisions import DIRECTIONS
from state.rfm import SEGMENTS as RFM_SEGMENTS
from state.rules import Rules
from state.triggers import TRIGGER_KINDS
from streams.tools.report import HIGH_VALUE_TIERS, LoadedProfiles, Report

#: Prometheus samples: name -> [(labels, value)] (see live_view.parse_metrics).
Samples = dict[str, list[tuple[dict[str, str], float]]]

DECISION_TOPICS = ("tier-changes", "offers", "alerts")
_DAY_MS = 86_400_000
_BAR_WIDTH = 10


def parse_ts_ms(text: object) -> int | None:
    """Epoch ms of an output record's RFC 3339 ``ts`` (None if it is not one)."""
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return int(dt.timestamp() * 1000)


def trigger_kind(record: Mapping[str, Any]) -> str | None:
    """The time trigger that fired a decision (``reason.trigger`` = ``<kind>:<key>``),
    or None for decisions caused by an input event."""
    reason = record.get("reason")
    trig = reason.get("trigger") if isinstance(reason, dict) else None
    if not isinstance(trig, str) or ":" not in trig:
        return None
    kind = trig.split(":", 1)[0]
    return kind if kind in TRIGGER_KINDS else None


class BasePanel:
    """A panel of the live view. Override the hooks you need (all do nothing here)."""

    #: The panel's key in the summary JSON, and its title on screen.
    key: ClassVar[str] = ""
    title: ClassVar[str] = ""
    #: Where it goes: "header" (one line), "top" (beside throughput and tiers),
    #: "middle" (beside the offers and alerts counters) or "row" (a full-width row of its
    #: own, under the middle one).
    placement: ClassVar[str] = "middle"
    #: Output topics (contract names) this panel needs tailed besides DECISION_TOPICS.
    topics: ClassVar[tuple[str, ...]] = ()

    def on_output(self, topic: str, record: Mapping[str, Any]) -> None:
        """A record just written to an output topic (contract name), as JSON."""

    def on_metrics(self, samples: Samples) -> None:
        """The worker's /metrics, parsed, about once a second."""

    def on_profiles(self, loaded: LoadedProfiles, report: Report) -> None:
        """Every profile in Redis and the management report's figures over them."""

    def renderable(self) -> RenderableType:
        return Text("")

    def summary(self) -> Any:
        return None


class SimClock(BasePanel):
    """How far the worker has got in simulated time: the newest event time among its
    decisions (decision ``ts`` is the cause's event time), the days since the bank's
    start and the pace in simulated days per wall-clock minute."""

    key = "simulated"
    title = "simulated time"
    placement = "header"

    def __init__(
        self,
        tz: ZoneInfo,
        start_ms: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tz = tz
        self.start_ms = start_ms
        self._clock = clock
        self._t0 = clock()
        self.latest_ms: int | None = None
        self.first_output_s: float | None = None  # wall seconds to the first decision
        self.day_one_s: float | None = None  # ... to the first decision a day after start

    def on_output(self, topic: str, record: Mapping[str, Any]) -> None:
        if topic not in DECISION_TOPICS:
            return
        ts = parse_ts_ms(record.get("ts"))
        if ts is None:
            return
        now = self._clock() - self._t0
        if self.first_output_s is None:
            self.first_output_s = now
        if self.latest_ms is None or ts > self.latest_ms:
            self.latest_ms = ts
        start = self.start_ms
        if self.day_one_s is None and start is not None and ts >= start + _DAY_MS:
            self.day_one_s = now

    def days(self) -> float | None:
        if self.latest_ms is None or self.start_ms is None:
            return None
        return (self.latest_ms - self.start_ms) / _DAY_MS

    def days_per_minute(self) -> float | None:
        """Simulated days covered per wall minute since the worker's first decision."""
        days = self.days()
        if days is None or self.first_output_s is None:
            return None
        wall = self._clock() - self._t0 - self.first_output_s
        return days / wall * 60 if wall >= 1.0 else None

    def local_text(self) -> str:
        if self.latest_ms is None:
            return "—"
        local = datetime.fromtimestamp(self.latest_ms / 1000, UTC).astimezone(self.tz)
        return local.strftime("%Y-%m-%d %H:%M")

    def renderable(self) -> RenderableType:
        text = Text(self.local_text(), style="bold")
        days, pace = self.days(), self.days_per_minute()
        if days is not None:
            text.append(f"  day {days:,.0f}")
        if pace is not None:
            text.append(f"  ({pace:,.0f} simulated days a minute)")
        return text

    def summary(self) -> Any:
        days, pace = self.days(), self.days_per_minute()
        return {
            "time": self.local_text(),
            "days": None if days is None else round(days, 1),
            "days_per_minute": None if pace is None else round(pace, 1),
            "first_decision_s": _round(self.first_output_s),
            "first_day_done_s": _round(self.day_one_s),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


class DecisionKinds(BasePanel):
    """Every decision seen on the output topics, by kind: tier changes by direction,
    offers and alerts by kind, and the time-driven triggers that fired them. Kinds not
    seen yet are listed too (dimmed), so a watcher sees what is still to come."""

    key = "decisions"
    title = "decisions seen, by kind"
    placement = "top"

    def __init__(self) -> None:
        self.directions: dict[str, int] = {}
        self.offers: dict[str, int] = {}
        self.alerts: dict[str, int] = {}
        self.triggers: dict[str, int] = {}

    def on_output(self, topic: str, record: Mapping[str, Any]) -> None:
        if topic == "tier-changes":
            _inc(self.directions, record.get("direction"))
        elif topic == "offers":
            _inc(self.offers, record.get("kind"))
        elif topic == "alerts":
            _inc(self.alerts, record.get("kind"))
        else:
            return
        kind = trigger_kind(record)
        if kind is not None:
            self.triggers[kind] = self.triggers.get(kind, 0) + 1

    def renderable(self) -> RenderableType:
        changes = _counts_table("tier changes", DIRECTIONS, self.directions)
        timers = _counts_table("time-driven", TRIGGER_KINDS, self.triggers)
        grid = Table.grid(padding=(0, 4))
        grid.add_row(changes, timers)
        return grid

    def summary(self) -> Any:
        return {
            "tier_directions": dict(sorted(self.directions.items())),
            "offers": dict(sorted(self.offers.items())),
            "alerts": dict(sorted(self.alerts.items())),
            "triggers": dict(sorted(self.triggers.items())),
        }


def _inc(counts: dict[str, int], kind: object) -> None:
    if isinstance(kind, str):
        counts[kind] = counts.get(kind, 0) + 1


def _counts_table(title: str, kinds: Sequence[str], counts: Mapping[str, int]) -> Table:
    """One row per kind, unseen kinds dimmed (still to come)."""
    t = Table(box=None, pad_edge=False, show_edge=False)
    t.add_column(title, header_style="bold")
    t.add_column("", justify="right")
    for k in kinds:
        n = counts.get(k, 0)
        t.add_row(
            Text(k, style="" if n else "dim"), Text(f"{n:,}", style="bold cyan" if n else "dim")
        )
    return t


@dataclass(frozen=True)
class ProfileCoverage:
    """How many profiles carry the value figures (RFM needs a counted transaction)."""

    profiles: int = 0
    with_rfm: int = 0
    with_p_alive: int = 0
    with_clv: int = 0


class CustomerValue(BasePanel):
    """RFM segments and the high-value customers at churn risk, from the Redis profiles
    (the management report's own figures): what a relationship manager acts on."""

    key = "customer_value"
    title = "RFM segments · churn risk"

    def __init__(self, rules: Rules, top: int = 4) -> None:
        self.churn_line = Decimal(str(rules.churn_p_alive))
        self.top = top
        self.coverage = ProfileCoverage()
        self.segments: dict[str, int] = {}
        self.at_risk = 0
        self.at_risk_top: list[dict[str, str]] = []
        self.loaded = False

    def on_profiles(self, loaded: LoadedProfiles, report: Report) -> None:
        rows = loaded.rows
        self.loaded = True
        self.coverage = ProfileCoverage(
            profiles=len(rows),
            with_rfm=sum(r.rfm_segment is not None for r in rows),
            with_p_alive=sum(r.p_alive is not None for r in rows),
            with_clv=sum(r.clv is not None for r in rows),
        )
        self.segments = dict(report.segment_counts)
        line = self.churn_line
        self.at_risk = sum(
            1
            for r in rows
            if r.tier in HIGH_VALUE_TIERS and r.p_alive is not None and r.p_alive < line
        )
        self.at_risk_top = [
            {
                "customer_id": r.customer_id,
                "tier": r.tier or "",
                "aum_cny": str(r.aum) if r.aum is not None else "",
                "p_alive": str(r.p_alive),
            }
            for r in report.churn_risk[: self.top]
            if r.p_alive is not None and r.p_alive < line
        ]

    def renderable(self) -> RenderableType:
        if not self.loaded:
            return Text("reading the profiles ...", style="dim")
        seg = Table(show_header=False, box=None, pad_edge=False)
        n = sum(self.segments.values()) or 1
        for name in RFM_SEGMENTS:
            k = self.segments.get(name, 0)
            seg.add_row(name, f"{k:,}", Text("█" * round(_BAR_WIDTH * k / n), style="blue"))
        headline = Text(
            f"{self.at_risk:,} high-value customers at churn risk",
            style="bold red" if self.at_risk else "dim",
        )
        headline.append(f" (P(alive) < {self.churn_line})", style="")
        risk = Table(box=None, pad_edge=False, show_edge=False)
        for name in ("customer", "tier", "AUM CNY", "P(alive)"):
            risk.add_column(name, justify="right" if name in ("AUM CNY", "P(alive)") else "left")
        for r in self.at_risk_top:
            risk.add_row(r["customer_id"], r["tier"], _short_money(r["aum_cny"]), r["p_alive"])
        c = self.coverage
        coverage = Text(
            f"{c.profiles:,} profiles in Redis: with RFM {c.with_rfm:,}, with P(alive) "
            f"{c.with_p_alive:,}, with CLV {c.with_clv:,}",
            style="dim",
        )
        grid = Table.grid(padding=(0, 3))
        grid.add_row(seg, Group(headline, risk))
        return Group(grid, coverage)

    def summary(self) -> Any:
        c = self.coverage
        return {
            "profiles": c.profiles,
            "with_rfm": c.with_rfm,
            "with_p_alive": c.with_p_alive,
            "with_clv": c.with_clv,
            "rfm_segments": self.segments,
            "churn_line": str(self.churn_line),
            "churn_risk_customers": self.at_risk,
            "churn_risk_top": self.at_risk_top,
        }


def _short_money(text: str) -> str:
    """``10793971.20`` -> ``10.8M``: enough for a glance, and it fits."""
    if not text:
        return "?"
    v = Decimal(text)
    for unit, size in (("M", Decimal(1_000_000)), ("k", Decimal(1_000))):
        if abs(v) >= size:
            return f"{v / size:.1f}{unit}"
    return f"{v:.0f}"


class OfferOutcomes(BasePanel):
    """How the customers answer the offers (issue 23), from the worker's counters:
    per offer kind the offers made, the answers attributed to them by outcome and the
    conversion (accepted / offers), plus the answers no remembered offer matched. In
    the demo the simulator's customers answer (streams/tools/sim_answers.py). A row of
    its own: the kinds side by side, three groups wide."""

    key = "offer_outcomes"
    title = "offer outcomes (answers to offers)"
    placement = "row"
    groups = 3

    def __init__(self) -> None:
        self.offers: dict[str, int] = {}
        #: kind -> outcome -> answers
        self.answers: dict[str, dict[str, int]] = {}
        self.unmatched = 0

    def on_metrics(self, samples: Samples) -> None:
        offers: dict[str, int] = {}
        for labels, v in samples.get("tierstream_offers_total", []):
            kind = labels.get("kind", "")
            offers[kind] = offers.get(kind, 0) + int(v)
        answers: dict[str, dict[str, int]] = {}
        for labels, v in samples.get("tierstream_offer_responses_total", []):
            per = answers.setdefault(labels.get("kind", ""), {})
            outcome = labels.get("outcome", "")
            per[outcome] = per.get(outcome, 0) + int(v)
        self.offers, self.answers = offers, answers
        self.unmatched = sum(
            int(v)
            for labels, v in samples.get("tierstream_events_consumed_total", [])
            if labels.get("topic") == "offer-responses" and labels.get("result") == "unmatched"
        )

    def conversion(self, kind: str) -> float | None:
        n = self.offers.get(kind, 0)
        return self.answers.get(kind, {}).get("accepted", 0) / n if n else None

    def renderable(self) -> RenderableType:
        if not self.answers and not self.offers:
            return Text("no offers yet", style="dim")
        totals = {o: sum(per.get(o, 0) for per in self.answers.values()) for o in OFFER_OUTCOMES}
        head = Text("answers: ")
        for outcome, style in zip(OFFER_OUTCOMES, ("bold green", "bold red", "dim"), strict=True):
            head.append(f"{outcome} {totals[outcome]:,}", style=style)
            head.append("  ")
        head.append(f"{self.unmatched:,} matched no remembered offer", style="dim")
        # per kind the offers and the conversion; the outcomes per kind are in the
        # summary JSON and, per tier and period, in `tierstream kpi`'s conversion.csv
        kinds = sorted(set(self.offers) | set(self.answers))
        per_group = -(-len(kinds) // self.groups)
        grid = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2))
        for _ in range(self.groups):
            grid.add_column("kind", no_wrap=True, overflow="ellipsis")
            grid.add_column("offers", justify="right")
            grid.add_column("conversion", justify="right")
        for i in range(per_group):
            row: list[str] = []
            for g in range(self.groups):
                k = i + g * per_group
                if k < len(kinds):
                    conv = self.conversion(kinds[k])
                    row += [
                        kinds[k],
                        f"{self.offers.get(kinds[k], 0):,}",
                        "—" if conv is None else f"{conv:.1%}",
                    ]
                else:
                    row += ["", "", ""]
            grid.add_row(*row)
        return Group(head, grid)

    def summary(self) -> Any:
        return {
            "offers": dict(sorted(self.offers.items())),
            "answers": {k: dict(sorted(v.items())) for k, v in sorted(self.answers.items())},
            "conversion": {
                k: round(c, 4) for k in sorted(self.offers) if (c := self.conversion(k)) is not None
            },
            "unmatched": self.unmatched,
        }


class Contribution(BasePanel):
    """The bank's estimated annual profit from its customers (contribution, issue 22):
    the total, its concentration beside the AUM's (the 80/20 analysis on profit), the
    sum per tier, and the customers who bring the most of it while their P(alive) is
    below the churn line -- the ones a relationship manager calls first."""

    key = "contribution"
    title = "contribution · the 80/20 on profit"

    def __init__(self, top: int = 4) -> None:
        self.top = top
        self.loaded = False
        self.total = Decimal(0)
        self.top20 = 0.0
        self.aum_top20 = 0.0
        self.by_tier: dict[str, Decimal] = {}
        self.at_risk: list[dict[str, str]] = []

    def on_profiles(self, loaded: LoadedProfiles, report: Report) -> None:
        self.loaded = True
        self.total = report.total_contribution
        self.top20 = report.contribution_top20_share
        self.aum_top20 = report.top20_share
        self.by_tier = dict(report.contribution_by_tier)
        self.at_risk = [
            {
                "customer_id": r.customer_id,
                "tier": r.tier or "",
                "contribution_cny": str(r.contribution),
                "p_alive": str(r.p_alive),
            }
            for r in report.contribution_at_risk[: self.top]
        ]

    def renderable(self) -> RenderableType:
        if not self.loaded:
            return Text("reading the profiles ...", style="dim")
        head = Text(f"{_short_money(str(self.total))} CNY a year", style="bold")
        head.append(
            f"  top 20% bring {self.top20:.0%} (of AUM they hold {self.aum_top20:.0%})",
            style="",
        )
        tiers = Table(show_header=False, box=None, pad_edge=False)
        total = self.total or Decimal(1)
        for name, value in self.by_tier.items():
            share = float(value / total) if self.total else 0.0
            bar = Text("█" * round(_BAR_WIDTH * max(share, 0.0)), style="magenta")
            tiers.add_row(name, _short_money(str(value)), bar)
        risk = Table(box=None, pad_edge=False, show_edge=False)
        for name in ("at churn risk", "tier", "CNY/yr", "P(alive)"):
            risk.add_column(name, justify="right" if name in ("CNY/yr", "P(alive)") else "left")
        for r in self.at_risk:
            risk.add_row(
                r["customer_id"], r["tier"], _short_money(r["contribution_cny"]), r["p_alive"]
            )
        grid = Table.grid(padding=(0, 3))
        grid.add_row(tiers, risk)
        return Group(head, grid)

    def summary(self) -> Any:
        return {
            "total_cny": str(self.total),
            "top20_share": round(self.top20, 4),
            "aum_top20_share": round(self.aum_top20, 4),
            "by_tier": {k: str(v) for k, v in self.by_tier.items()},
            "at_churn_risk_top": self.at_risk,
        }


def default_panels(rules: Rules, sim_start_ms: int | None) -> list[BasePanel]:
    """The extension point: the panels the view shows, in order (see the module
    docstring for how to add one)."""
    return [
        SimClock(ZoneInfo(rules.timezone), sim_start_ms),
        DecisionKinds(),
        CustomerValue(rules),
        Contribution(),
        OfferOutcomes(),
    ]
