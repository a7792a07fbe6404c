"""What ``tierstream backtest`` writes: the migration matrix, summaries and reports.

``write_outputs`` writes into ``--out``:

* ``migration.csv`` -- ``from_tier,to_tier,customers``: each customer's final tier
  under the baseline against the one under the new rules, one row per pair that
  occurs, the diagonal included (a contract: other systems read it);
* ``summary.json`` -- per rule set: customers per tier, tier changes by direction (and
  by cause: an event, time alone, a rules switch), offers and alerts by kind, the AUM
  top-20% share; and the input, the throughput, the moves up and down;
* ``changed_customers.csv`` -- ``customer_id,old_tier,new_tier,aum_cny`` of every
  customer whose tier differs, the largest AUM first; ``customers.csv`` -- every
  customer with both tiers;
* ``migration.png`` (the matrix as a heat map), ``report.md`` and ``report.html`` (the
  heat map, the differences, the customers who move).

matplotlib is imported only when the heat map is drawn.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

from state.decisions import TIERS
from state.money import fen_str
from streams.tools.backtest import Backtest

MIGRATION_HEADER = ("from_tier", "to_tier", "customers")
CHANGED_HEADER = ("customer_id", "old_tier", "new_tier", "aum_cny")
_TOP_CHANGED = 25


def write_outputs(bt: Backtest, out: Path, meta: dict[str, Any]) -> list[Path]:
    """Every output file; ``meta`` (inputs, rules files) goes into summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    p = out / "migration.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(MIGRATION_HEADER)
        w.writerows(bt.migration())
    paths.append(p)
    p = out / "changed_customers.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CHANGED_HEADER)
        w.writerows((c, a, b, fen_str(aum)) for c, a, b, aum in bt.changed())
    paths.append(p)
    p = out / "customers.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("customer_id", "baseline_tier", "new_tier", "aum_cny"))
        for c in sorted(set(bt.baseline.tiers) | set(bt.new.tiers)):
            w.writerow(
                (
                    c,
                    bt.baseline.tiers.get(c, ""),
                    bt.new.tiers.get(c, ""),
                    fen_str(bt.new.aum_fen.get(c, 0)),
                )
            )
    paths.append(p)
    summary = {**meta, **bt.summary()}
    p = out / "summary.json"
    p.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths.append(p)
    paths.append(_heat_map(bt, out / "migration.png"))
    p = out / "report.md"
    p.write_text(render_markdown(bt, summary), encoding="utf-8")
    paths.append(p)
    p = out / "report.html"
    p.write_text(render_html(bt, summary), encoding="utf-8")
    paths.append(p)
    return paths


def _matrix(bt: Backtest) -> list[list[int]]:
    rank = {t: i for i, t in enumerate(TIERS)}
    grid = [[0] * len(TIERS) for _ in TIERS]
    for a, b, n in bt.migration():
        grid[rank[a]][rank[b]] = n
    return grid


def _heat_map(bt: Backtest, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = _matrix(bt)
    fig, ax = plt.subplots(figsize=(5.6, 4.6), dpi=110)
    img = ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(TIERS)), labels=list(TIERS))
    ax.set_yticks(range(len(TIERS)), labels=list(TIERS))
    ax.set_xlabel(f"new rules ({bt.new.version})")
    ax.set_ylabel(f"baseline ({bt.baseline.version})")
    ax.set_title("Customers by final tier: baseline -> new")
    top = max((max(row) for row in grid), default=0) or 1
    for i, row in enumerate(grid):
        for j, n in enumerate(row):
            color = "white" if n > top / 2 else "black"
            ax.text(j, i, f"{n:,}", ha="center", va="center", color=color, fontsize=9)
    fig.colorbar(img, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _diff_rows(summary: dict[str, Any], section: str) -> list[tuple[str, int, int]]:
    a, b = summary["baseline"][section], summary["new"][section]
    keys = list(a) + [k for k in b if k not in a]  # the summary's order (tiers by rank)
    return [(k, a.get(k, 0), b.get(k, 0)) for k in keys]


_SECTIONS = (
    ("Customers per tier", "customers_per_tier"),
    ("Tier changes by direction", "tier_changes_by_direction"),
    ("Tier changes by cause", "tier_changes_by_cause"),
    ("Offers by kind", "offers_by_kind"),
    ("Alerts by kind", "alerts_by_kind"),
)


def render_markdown(bt: Backtest, summary: dict[str, Any]) -> str:
    s = summary
    lines = [
        "# Rules backtest",
        "",
        f"Baseline **{bt.baseline.version}** against new **{bt.new.version}** over "
        f"{bt.events:,} input records (as of {s['as_of']}); "
        f"{s['events_per_second']:,} records/s decided ({s['seconds']:.1f} s for both).",
        "",
        f"Customers: {s['migration']['stayed']:,} keep their tier, {s['migration']['up']:,} "
        f"move up, {s['migration']['down']:,} move down.",
        "",
        "## Migration matrix (rows: baseline, columns: new)",
        "",
        "![migration matrix](migration.png)",
        "",
        "| baseline \\ new | " + " | ".join(TIERS) + " |",
        "|---|" + "---:|" * len(TIERS),
    ]
    for t, row in zip(TIERS, _matrix(bt), strict=True):
        lines.append(f"| {t} | " + " | ".join(f"{n:,}" for n in row) + " |")
    lines += ["", "## Differences", ""]
    for title, key in _SECTIONS:
        lines += [f"### {title}", "", "| | baseline | new | difference |", "|---|---:|---:|---:|"]
        for k, a, b in _diff_rows(s, key):
            lines.append(f"| {k} | {a:,} | {b:,} | {b - a:+,} |")
        lines.append("")
    share_a, share_b = s["baseline"]["aum_top20_share"], s["new"]["aum_top20_share"]
    lines += [
        f"AUM held by the top 20% of customers: {share_a:.1%} (baseline), {share_b:.1%} (new).",
        "",
        f"## Customers who move ({len(bt.changed()):,}; the {_TOP_CHANGED} largest by AUM, "
        "all in changed_customers.csv)",
        "",
        "| customer | baseline | new | AUM (CNY) |",
        "|---|---|---|---:|",
    ]
    for cid, old, new, aum in bt.changed()[:_TOP_CHANGED]:
        lines.append(f"| {cid} | {old} | {new} | {fen_str(aum)} |")
    return "\n".join(lines) + "\n"


def render_html(bt: Backtest, summary: dict[str, Any]) -> str:
    s = summary
    e = html.escape
    grid = _matrix(bt)
    top = max((max(row) for row in grid), default=0) or 1
    cells = []
    for tier, row in zip(TIERS, grid, strict=True):
        tds = "".join(
            f'<td style="background: rgba(62,124,177,{0.08 + 0.9 * n / top:.2f});'
            f'{" color: white;" if n > top / 2 else ""}">{n:,}</td>'
            for n in row
        )
        cells.append(f"<tr><th>{e(tier)}</th>{tds}</tr>")
    diff = []
    for title, key in _SECTIONS:
        rows = "".join(
            f"<tr><td>{e(k)}</td><td>{a:,}</td><td>{b:,}</td><td>{b - a:+,}</td></tr>"
            for k, a, b in _diff_rows(s, key)
        )
        diff.append(
            f"<h3>{e(title)}</h3><table><tr><th></th><th>baseline</th><th>new</th>"
            f"<th>difference</th></tr>{rows}</table>"
        )
    moved = "".join(
        f"<tr><td>{e(c)}</td><td>{e(a)}</td><td>{e(b)}</td><td>{fen_str(aum)}</td></tr>"
        for c, a, b, aum in bt.changed()[:_TOP_CHANGED]
    )
    head = "".join(f"<th>{e(t)}</th>" for t in TIERS)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Rules backtest</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:.3em .7em;
text-align:right}}</style></head><body>
<h1>Rules backtest</h1>
<p>Baseline <b>{e(bt.baseline.version)}</b> against new <b>{e(bt.new.version)}</b> over
{bt.events:,} input records (as of {e(str(s["as_of"]))}); {s["events_per_second"]:,} records/s
decided ({s["seconds"]:.1f} s for both).</p>
<p>Customers: {s["migration"]["stayed"]:,} keep their tier, {s["migration"]["up"]:,} move up,
{s["migration"]["down"]:,} move down.</p>
<h2>Migration matrix (rows: baseline, columns: new)</h2>
<table><tr><th>baseline \\ new</th>{head}</tr>{"".join(cells)}</table>
<img src="migration.png" alt="migration matrix heat map">
<h2>Differences</h2>{"".join(diff)}
<p>AUM held by the top 20% of customers: {s["baseline"]["aum_top20_share"]:.1%} (baseline),
{s["new"]["aum_top20_share"]:.1%} (new).</p>
<h2>Customers who move ({len(bt.changed()):,})</h2>
<table><tr><th>customer</th><th>baseline</th><th>new</th><th>AUM (CNY)</th></tr>{moved}</table>
</body></html>
"""
