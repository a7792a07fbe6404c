"""The management report's charts and pages: PNG charts, report.md and report.html.

``write_report`` writes into a directory: ``tiers.png``, ``lorenz.png`` (AUM and
contribution side by side), ``rfm.png``, ``clv_by_tier.png``, ``report.md`` and
``report.html`` (the same content; the HTML
shows the charts inline). matplotlib (about 0.4 s and 40 MiB) is imported only when a
chart is drawn (``pyplot``), so the ``tierstream`` parser, which every command builds,
never loads it. Charts use the Agg backend (no display needed: the report runs on
servers and in CI).
"""

from __future__ import annotations

import html
from decimal import Decimal
from pathlib import Path
from typing import Any

from streams.tools.report import Report

CHARTS = ("tiers.png", "lorenz.png", "rfm.png", "clv_by_tier.png")
_TIER_COLORS = {
    "mass": "#9aa5b1",
    "affluent": "#3e7cb1",
    "hnw": "#e0a100",
    "private": "#8e3b8e",
    "none": "#dddddd",
}


def write_report(report: Report, out: Path, source: str = "") -> list[Path]:
    """Write the four charts and the two summaries; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        _tiers_chart(report, out / "tiers.png"),
        _lorenz_chart(report, out / "lorenz.png"),
        _rfm_chart(report, out / "rfm.png"),
        _clv_chart(report, out / "clv_by_tier.png"),
    ]
    md = out / "report.md"
    md.write_text(render_markdown(report, source), encoding="utf-8")
    page = out / "report.html"
    page.write_text(render_html(report, source), encoding="utf-8")
    return [*paths, md, page]


# -- charts ----------------------------------------------------------------------------


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")  # before pyplot: no display on servers
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def _tiers_chart(report: Report, path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(6, 4))
    names = list(report.tier_counts)
    counts = [report.tier_counts[t] for t in names]
    bars = ax.bar(names, counts, color=[_TIER_COLORS.get(t, "#777") for t in names])
    for bar, n in zip(bars, counts, strict=True):
        share = n / report.customers if report.customers else 0
        ax.annotate(
            f"{n:,}\n{share:.1%}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_title(f"Customers per tier ({report.customers:,} customers)")
    ax.set_ylabel("customers")
    ax.set_ylim(0, max([*counts, 1]) * 1.2)
    return save_figure(fig, path)


def _lorenz_chart(report: Report, path: Path) -> Path:
    """Two Lorenz curves side by side: AUM (who holds the assets) and contribution
    (who brings the profit), each with its top-20% share."""
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 5))
    panels = (
        ("AUM", report.lorenz, report.top20_share, report.total_aum, "#3e7cb1"),
        (
            "contribution",
            report.contribution_lorenz,
            report.contribution_top20_share,
            report.total_contribution,
            "#8e3b8e",
        ),
    )
    for ax, (what, (xs, ys), top20, total, color) in zip(axes, panels, strict=True):
        ax.plot([0, 1], [0, 1], "--", color="#999", label=f"equal {what}")
        ax.plot(xs, ys, color=color, lw=2, label=f"Lorenz curve of {what}")
        ax.fill_between(xs, ys, xs, color=color, alpha=0.12)
        ax.axvline(0.8, color="#c0392b", lw=1)
        # The curve's height at 80% of customers is what the bottom 80% hold.
        ax.annotate(
            f"top 20% of customers\nhold {top20:.1%} of {what}",
            (0.8, 1 - top20),
            xytext=(0.25, 0.7),
            arrowprops={"arrowstyle": "->", "color": "#c0392b"},
            color="#c0392b",
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("share of customers (smallest first)")
        ax.set_ylabel(f"share of total {what}")
        unit = "CNY" if what == "AUM" else "CNY a year"
        ax.set_title(f"{what} concentration (total {_money(total)} {unit})")
        ax.legend(loc="upper left")
    return save_figure(fig, path)


def _rfm_chart(report: Report, path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(6, 5))
    grid = report.rfm_grid
    im = ax.imshow(grid, cmap="Blues", origin="lower")
    peak = max(max(row) for row in grid) or 1
    for r in range(5):
        for f in range(5):
            n = grid[r][f]
            ax.text(
                f,
                r,
                f"{n:,}",
                ha="center",
                va="center",
                color="white" if n > peak * 0.6 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(5), [str(i) for i in range(1, 6)])
    ax.set_yticks(range(5), [str(i) for i in range(1, 6)])
    ax.set_xlabel("frequency score F (5 = most transactions)")
    ax.set_ylabel("recency score R (5 = most recent)")
    ax.set_title("RFM grid: customers by R and F score")
    fig.colorbar(im, ax=ax, label="customers")
    return save_figure(fig, path)


def _clv_chart(report: Report, path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(6, 4))
    rows = [c for c in report.clv_by_tier if c.mean is not None]
    names = [c.tier for c in rows]
    means = [float(c.mean or 0) for c in rows]
    medians = [float(c.median or 0) for c in rows]
    x = range(len(rows))
    ax.bar(x, means, color=[_TIER_COLORS[t] for t in names], label="mean CLV")
    ax.scatter(x, medians, color="black", marker="_", s=400, label="median CLV", zorder=3)
    ax.set_xticks(list(x), names)
    positive = [v for v in means + medians if v > 0]
    if positive and max(positive) / min(positive) > 50:
        ax.set_yscale("log")  # private CLVs dwarf mass CLVs
    ax.set_ylabel("CLV (CNY)")
    ax.set_title("Customer lifetime value by tier")
    ax.legend()
    return save_figure(fig, path)


# -- summaries --------------------------------------------------------------------------


def _money(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _summary_tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, shared by the markdown and HTML renderers."""
    n = report.customers or 1
    tiers = [[t, f"{c:,}", f"{c / n:.1%}"] for t, c in report.tier_counts.items()]
    clv = [
        [c.tier, f"{c.customers:,}", f"{c.with_clv:,}", _money(c.mean), _money(c.median)]
        for c in report.clv_by_tier
    ]
    segs = [[s, f"{c:,}"] for s, c in report.segment_counts.items()]
    risk = [
        [r.customer_id, r.tier or "", _money(r.aum), f"{r.p_alive}", _money(r.clv)]
        for r in report.churn_risk
    ]
    total = report.total_contribution or Decimal(1)
    contribution = [
        [t, _money(v), f"{v / total:.1%}"] for t, v in report.contribution_by_tier.items()
    ]
    valuable = [
        [
            r.customer_id,
            r.tier or "",
            _money(r.contribution),
            _money(r.clv_profit),
            f"{r.p_alive}",
            _money(r.aum),
        ]
        for r in report.contribution_at_risk
    ]
    tables = [
        ("Tier distribution", ["tier", "customers", "share"], tiers),
        ("CLV by tier (CNY)", ["tier", "customers", "with CLV", "mean", "median"], clv),
        ("RFM segments", ["segment", "customers"], segs),
        (
            "High-value customers with the highest churn risk (lowest P(alive))",
            ["customer", "tier", "AUM (CNY)", "P(alive)", "CLV (CNY)"],
            risk,
        ),
        (
            "Estimated annual contribution by tier (CNY)",
            ["tier", "contribution", "share"],
            contribution,
        ),
        (
            "Top-contribution customers at churn risk (P(alive) below the churn line)",
            [
                "customer",
                "tier",
                "contribution (CNY a year)",
                "CLV on profit (CNY)",
                "P(alive)",
                "AUM (CNY)",
            ],
            valuable,
        ),
    ]
    if report.problems:
        tables.append(
            (
                "Profiles that could not be read (left out above)",
                ["customer", "problem"],
                [[cid, why] for cid, why in report.problems],
            )
        )
    return tables


def _headline(report: Report) -> str:
    return (
        f"{report.customers:,} customers, total AUM {_money(report.total_aum)} CNY; "
        f"the top 20% of customers hold {report.top20_share:.1%} of it. "
        f"Estimated annual contribution {_money(report.total_contribution)} CNY; "
        f"the top 20% bring {report.contribution_top20_share:.1%} of it."
    )


def render_markdown(report: Report, source: str = "") -> str:
    out = ["# tierstream management report", ""]
    if source:
        out += [f"Source: Redis profiles under `{source}`.", ""]
    out += [_headline(report), ""]
    out += [f"![{c}]({c})" for c in CHARTS] + [""]
    for title, header, rows in _summary_tables(report):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |"]
        out.append("|" + " --- |" * len(header))
        out += ["| " + " | ".join(row) + " |" for row in rows]
        if not rows:
            out.append("| " + " | ".join("—" for _ in header) + " |")
        out.append("")
    return "\n".join(out)


def render_html(report: Report, source: str = "") -> str:
    e = html.escape
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>tierstream management report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "img{max-width:48%;margin:1%}</style></head><body>",
        "<h1>tierstream management report</h1>",
    ]
    if source:
        out.append(f"<p>Source: Redis profiles under <code>{e(source)}</code>.</p>")
    out.append(f"<p><b>{e(_headline(report))}</b></p><div>")
    out += [f"<img src='{c}' alt='{c}'>" for c in CHARTS]
    out.append("</div>")
    for title, header, rows in _summary_tables(report):
        out.append(f"<h2>{e(title)}</h2><table><tr>")
        out += [f"<th>{e(h)}</th>" for h in header]
        out.append("</tr>")
        for row in rows:
            out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)
