"""The KPI job's files: three CSVs, three charts and the report as markdown and HTML.

``write_kpis`` writes into a directory: ``migration.csv`` (``from_tier,to_tier,
customers``, every start tier -- ``none`` first -- against every end tier, zeros
included, so the file has the same shape every period), ``conversion.csv``
(``kind,tier,offers,accepted,declined,ignored,conversion``, one row per kind and tier
offered in the period), ``retention.csv`` (``tier,customers,same_or_higher,
moved_down,retention``, every tier), the charts ``migration.png`` (heat map),
``conversion.png`` (conversion by kind and tier) and ``flow.png`` (tier flow from the
start of the period to its end), and ``report.md`` / ``report.html``. matplotlib is
imported only to draw (as in report_render.py), on the Agg backend.
"""

from __future__ import annotations

import csv
import html
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from state.decisions import TIERS
from streams.tools.kpi import START_TIERS, UNMATCHED_REASONS, KpiInput, Kpis
from streams.tools.report_render import pyplot, save_figure

CSV_FILES = ("migration.csv", "conversion.csv", "retention.csv")
CHARTS = ("migration.png", "conversion.png", "flow.png")
MIGRATION_HEADER = ("from_tier", "to_tier", "customers")
CONVERSION_HEADER = ("kind", "tier", "offers", "accepted", "declined", "ignored", "conversion")
RETENTION_HEADER = ("tier", "customers", "same_or_higher", "moved_down", "retention")
_TIER_COLORS = {
    "none": "#cccccc",
    "mass": "#9aa5b1",
    "affluent": "#3e7cb1",
    "hnw": "#e0a100",
    "private": "#8e3b8e",
}


@dataclass(frozen=True)
class Source:
    """Where the figures come from, for the report's first lines."""

    bootstrap: str
    #: contract topic -> (full name, offsets read)
    topics: dict[str, tuple[str, int]]
    timezone: str
    seconds: float = 0.0


def write_kpis(kpis: Kpis, inp: KpiInput, out: Path, source: Source) -> list[Path]:
    """Write every file; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        _csv(out / "migration.csv", MIGRATION_HEADER, migration_rows(kpis)),
        _csv(out / "conversion.csv", CONVERSION_HEADER, conversion_rows(kpis)),
        _csv(out / "retention.csv", RETENTION_HEADER, retention_rows(kpis)),
        _migration_chart(kpis, out / "migration.png"),
        _conversion_chart(kpis, out / "conversion.png"),
        _flow_chart(kpis, out / "flow.png"),
    ]
    md = out / "report.md"
    md.write_text(render_markdown(kpis, inp, source), encoding="utf-8")
    page = out / "report.html"
    page.write_text(render_html(kpis, inp, source), encoding="utf-8")
    return [*paths, md, page]


# -- the CSV rows ----------------------------------------------------------------------


def migration_rows(kpis: Kpis) -> list[list[str]]:
    return [[frm, to, str(kpis.migration.get((frm, to), 0))] for frm in START_TIERS for to in TIERS]


def conversion_rows(kpis: Kpis) -> list[list[str]]:
    return [
        [
            r.kind,
            r.tier,
            *map(str, (r.offers, r.accepted, r.declined, r.ignored, r.conversion)),
        ]
        for r in kpis.conversion
    ]


def retention_rows(kpis: Kpis) -> list[list[str]]:
    return [
        [
            r.tier,
            *map(str, (r.customers, r.same_or_higher, r.moved_down)),
            "" if r.retention is None else str(r.retention),
        ]
        for r in kpis.retention
    ]


def _csv(path: Path, header: Sequence[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


# -- charts ----------------------------------------------------------------------------


def _period(kpis: Kpis) -> str:
    return f"{kpis.period.first} – {kpis.period.last}"


def _migration_chart(kpis: Kpis, path: Path) -> Path:
    grid = [[kpis.migration.get((f, t), 0) for t in TIERS] for f in START_TIERS]
    fig, ax = pyplot().subplots(figsize=(6.5, 5))
    # colour by the share of the start tier (row), so small tiers show their pattern too
    shares = [[n / (sum(row) or 1) for n in row] for row in grid]
    im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for r, row in enumerate(grid):
        for c, n in enumerate(row):
            ax.text(
                c,
                r,
                f"{n:,}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if shares[r][c] > 0.6 else "black",
            )
    ax.set_xticks(range(len(TIERS)), TIERS)
    ax.set_yticks(range(len(START_TIERS)), START_TIERS)
    ax.set_xlabel("tier at the end")
    ax.set_ylabel("tier at the start")
    ax.set_title(f"Tier migration {_period(kpis)} ({kpis.customers:,} customers)")
    fig.colorbar(im, ax=ax, label="share of the start tier")
    return save_figure(fig, path)


def _conversion_chart(kpis: Kpis, path: Path) -> Path:
    kinds = sorted({r.kind for r in kpis.conversion})
    fig, ax = pyplot().subplots(figsize=(7, max(2.5, 0.45 * len(kinds) + 1.5)))
    if not kinds:
        ax.text(0.5, 0.5, "no offers in the period", ha="center", va="center")
        ax.set_axis_off()
        return save_figure(fig, path)
    cells = {(r.kind, r.tier): r for r in kpis.conversion}
    values = [
        [float(cells[(k, t)].conversion) if (k, t) in cells else float("nan") for t in TIERS]
        for k in kinds
    ]
    peak = max((v for row in values for v in row if v == v), default=0.0) or 1.0
    im = ax.imshow(values, cmap="Greens", vmin=0, vmax=peak, aspect="auto")
    for r, k in enumerate(kinds):
        for c, t in enumerate(TIERS):
            row = cells.get((k, t))
            if row is None:
                continue
            ax.text(
                c,
                r,
                f"{float(row.conversion):.1%}\n{row.accepted}/{row.offers}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if float(row.conversion) > 0.6 * peak else "black",
            )
    ax.set_xticks(range(len(TIERS)), TIERS)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_xlabel("tier in the offer")
    ax.set_title(f"Offer conversion (accepted / offers), {_period(kpis)}")
    fig.colorbar(im, ax=ax, label="conversion")
    return save_figure(fig, path)


def _flow_chart(kpis: Kpis, path: Path) -> Path:
    """An alluvial diagram: start tiers stacked on the left, end tiers on the right,
    a band per (start, end) pair as wide as its customers, coloured by the start tier."""
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    total = sum(kpis.migration.values())
    if not total:
        ax.text(0.5, 0.5, "no tier changes up to the end of the period", ha="center")
        ax.set_axis_off()
        return save_figure(fig, path)
    gap = total * 0.02
    left_sizes = {f: sum(n for (a, _b), n in kpis.migration.items() if a == f) for f in START_TIERS}
    right_sizes = {t: sum(n for (_a, b), n in kpis.migration.items() if b == t) for t in TIERS}
    # highest tier on top: stack from the bottom in tier order
    left_pos, right_pos = _stack(left_sizes, gap), _stack(right_sizes, gap)
    out_used = dict.fromkeys(left_sizes, 0.0)
    in_used = dict.fromkeys(right_sizes, 0.0)
    xs = np.linspace(0, 1, 60)
    ease = (1 - np.cos(np.pi * xs)) / 2
    for frm in START_TIERS:
        for to in TIERS:
            n = kpis.migration.get((frm, to), 0)
            if not n:
                continue
            y0 = left_pos[frm] + out_used[frm]
            y1 = right_pos[to] + in_used[to]
            out_used[frm] += n
            in_used[to] += n
            lower = y0 + (y1 - y0) * ease
            ax.fill_between(
                0.1 + 0.8 * xs, lower, lower + n, color=_TIER_COLORS[frm], alpha=0.55, lw=0
            )
    for name, size in left_sizes.items():
        if size:
            ax.bar(0.05, size, width=0.1, bottom=left_pos[name], color=_TIER_COLORS[name])
            ax.text(0.0, left_pos[name] + size / 2, f"{name} {size:,}", ha="right", va="center")
    for name, size in right_sizes.items():
        if size:
            ax.bar(0.95, size, width=0.1, bottom=right_pos[name], color=_TIER_COLORS[name])
            ax.text(1.0, right_pos[name] + size / 2, f"{name} {size:,}", ha="left", va="center")
    ax.set_xlim(-0.35, 1.35)
    ax.set_axis_off()
    ax.set_title(f"Tier flow: start of {kpis.period.first} → end of {kpis.period.last}")
    return save_figure(fig, path)


def _stack(sizes: dict[str, int], gap: float) -> dict[str, float]:
    pos: dict[str, float] = {}
    y = 0.0
    for name, size in sizes.items():
        pos[name] = y
        if size:
            y += size + gap
    return pos


# -- the report ------------------------------------------------------------------------


def _headline(kpis: Kpis) -> list[str]:
    up = sum(n for (f, t), n in kpis.migration.items() if f != "none" and _rank(t) > _rank(f))
    down = sum(n for (f, t), n in kpis.migration.items() if f != "none" and _rank(t) < _rank(f))
    new = sum(n for (f, _t), n in kpis.migration.items() if f == "none")
    held = [r for r in kpis.retention if r.customers]
    offers = sum(r.offers for r in kpis.conversion)
    accepted = sum(r.accepted for r in kpis.conversion)
    lines = [
        f"{kpis.customers:,} customers with a tier by the end of the period: {up:,} moved "
        f"up, {down:,} moved down, {new:,} got their first tier.",
    ]
    if held:
        lines.append(
            "Retention (same tier or higher at the end): "
            + ", ".join(f"{r.tier} {float(r.retention or 0):.1%}" for r in held)
            + "."
        )
    if offers:
        lines.append(
            f"{offers:,} offers made in the period, {accepted:,} accepted "
            f"({accepted / offers:.1%})."
        )
    return lines


def _rank(tier: str) -> int:
    return START_TIERS.index(tier)


def _tables(kpis: Kpis, inp: KpiInput) -> list[tuple[str, list[str], list[list[str]]]]:
    stats = kpis.responses
    mig = [r for r in migration_rows(kpis) if r[2] != "0"]
    responses = [
        ["responses to offers of the period", f"{stats.to_period_offers:,}"],
        ["  of which stamped after the period", f"{stats.after_period:,}"],
        ["offers of the period answered / unanswered", f"{stats.offers_answered:,} / "
         f"{stats.offers_unanswered:,}"],
        ["responses to offers outside the period", f"{stats.to_other_offers:,}"],
        *[[f"unmatched: {r}", f"{stats.unmatched.get(r, 0):,}"] for r in UNMATCHED_REASONS],
    ]  # fmt: skip
    bad = Counter[str]()
    for (topic, _field), n in inp.malformed.items():
        bad[topic] += n
    read = [
        [t, f"{inp.records[t]:,}", f"{inp.duplicates[t]:,}", f"{bad[t]:,}"]
        for t in ("tier-changes", "offers", "offer-responses")
    ]
    tables = [
        ("Tier migration (customers)", list(MIGRATION_HEADER), mig),
        ("Retention by tier at the start", list(RETENTION_HEADER), retention_rows(kpis)),
        ("Offer conversion by kind and tier", list(CONVERSION_HEADER), conversion_rows(kpis)),
        ("Offer responses", ["", "count"], responses),
        ("Records read", ["topic", "records", "duplicates", "malformed (left out)"], read),
    ]
    if inp.malformed:
        tables.append(
            (
                "Malformed records (left out, never guessed)",
                ["topic", "field", "records"],
                [[t, f, f"{n:,}"] for (t, f), n in sorted(inp.malformed.items())],
            )
        )
    return tables


def _source_line(kpis: Kpis, source: Source) -> str:
    topics = ", ".join(f"`{full}` ({n:,} offsets)" for full, n in source.topics.values())
    return (
        f"Period {kpis.period.first} to {kpis.period.last} inclusive, local days in "
        f"{source.timezone}. Read from {source.bootstrap}: {topics}, from the beginning "
        f"to their end at the start of the run ({source.seconds:.1f} s)."
    )


def render_markdown(kpis: Kpis, inp: KpiInput, source: Source) -> str:
    out = [f"# Tiering KPIs, {_period(kpis)}", "", _source_line(kpis, source), ""]
    out += [*(f"- {line}" for line in _headline(kpis)), ""]
    out += [f"![{c}]({c})" for c in CHARTS] + [""]
    for title, header, rows in _tables(kpis, inp):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |"]
        out.append("|" + " --- |" * len(header))
        out += ["| " + " | ".join(c.strip() or " " for c in row) + " |" for row in rows]
        if not rows:
            out.append("| " + " | ".join("—" for _ in header) + " |")
        out.append("")
    if inp.examples:
        out += ["First malformed records:", ""]
        out += [f"- `{e}`" for e in inp.examples] + [""]
    out += [f"Files: {', '.join(CSV_FILES)}.", ""]
    return "\n".join(out)


def render_html(kpis: Kpis, inp: KpiInput, source: Source) -> str:
    e = html.escape
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Tiering KPIs {e(_period(kpis))}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "img{max-width:48%;margin:1%}</style></head><body>",
        f"<h1>Tiering KPIs, {e(_period(kpis))}</h1>",
        f"<p>{e(_source_line(kpis, source).replace('`', ''))}</p><ul>",
        *(f"<li>{e(line)}</li>" for line in _headline(kpis)),
        "</ul><div>",
        *(f"<img src='{c}' alt='{c}'>" for c in CHARTS),
        "</div>",
    ]
    for title, header, rows in _tables(kpis, inp):
        out.append(f"<h2>{e(title)}</h2><table><tr>")
        out += [f"<th>{e(h)}</th>" for h in header]
        out.append("</tr>")
        for row in rows:
            out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        out.append("</table>")
    if inp.examples:
        out.append("<p>First malformed records:</p><ul>")
        out += [f"<li><code>{e(x)}</code></li>" for x in inp.examples]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)
