"""The product catalogue and the campaign calendar: parsed from the rules file.

Why here and not in rules.py: both are lists of records with their own cross-checks
(campaign products must exist in the catalogue, ids must be unique and safe to join
into a flat ``reason`` string), and keeping them apart keeps rules.py about scalars.
Every error names the entry and the key (``catalogue[2].risk``), like the rest of the
rules loader, so a bad file stops start-up with a message that says what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from schemas.events import PRODUCT_RISKS, SEGMENTS
from state.decisions import TIER_RANK, TIERS

#: Product and campaign ids: they are joined with "," into ``reason["products"]``.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class Product:
    """One catalogue entry. ``risk`` is 1..5 (R1..R5); ``min_tier`` a tier rank."""

    id: str
    name: str
    type: str
    risk: int
    min_tier: int
    min_aum_fen: int
    segments: frozenset[str]
    order: int  # position in the catalogue: the last tie-break of the ranking


@dataclass(frozen=True, slots=True)
class Campaign:
    """One calendar entry: from ``start`` to ``end`` (local dates, inclusive)."""

    id: str
    start_day: int  # local day number (days since 1970-01-01)
    end_day: int
    tiers: frozenset[str]
    segments: frozenset[str]
    kind: str
    products: tuple[str, ...]
    spread_ms: int  # offers of this campaign are spread over [start, start + spread_ms)


def _err(where: str, message: str) -> ValueError:
    return ValueError(f"rules: '{where}' {message}")


def _table(entry: Any, where: str, known: frozenset[str], required: frozenset[str]) -> None:
    if not isinstance(entry, dict):
        raise _err(where, f"must be a table, got {entry!r}")
    for key in sorted(set(entry) - known):
        raise _err(f"{where}.{key}", "is not a known key")
    for key in sorted(required - set(entry)):
        raise _err(f"{where}.{key}", "is required")


def _ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise _err(where, f"must match {_ID.pattern} (no commas or spaces), got {value!r}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _err(where, f"must be a non-empty string, got {value!r}")
    return value


def _choices(value: Any, where: str, allowed: tuple[str, ...]) -> frozenset[str]:
    if not isinstance(value, list) or not value or any(v not in allowed for v in value):
        raise _err(where, f"must be a non-empty list of {list(allowed)}, got {value!r}")
    return frozenset(value)


def _fen(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _err(where, f"must be a decimal string (CNY), got {value!r}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise _err(where, f"must be a decimal number, got {value!r}") from None
    if not d.is_finite() or d < 0:
        raise _err(where, f"must be a finite amount >= 0, got {value!r}")
    return int(d.scaleb(2).to_integral_value(rounding=ROUND_HALF_EVEN))


_PRODUCT_KEYS = frozenset({"id", "name", "type", "risk", "min_tier", "min_aum_cny", "segments"})
_PRODUCT_REQUIRED = frozenset({"id", "name", "type", "risk"})


def parse_catalogue(raw: Any) -> tuple[Product, ...]:
    """``[[catalogue]]`` entries -> products (ids unique)."""
    if not isinstance(raw, list):
        raise _err("catalogue", f"must be an array of tables, got {raw!r}")
    out: list[Product] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"catalogue[{i}]"
        _table(entry, where, _PRODUCT_KEYS, _PRODUCT_REQUIRED)
        pid = _ident(entry["id"], f"{where}.id")
        if pid in seen:
            raise _err(f"{where}.id", f"duplicates product {pid!r}")
        seen.add(pid)
        risk = entry["risk"]
        if risk not in PRODUCT_RISKS:
            raise _err(f"{where}.risk", f"must be one of {list(PRODUCT_RISKS)}, got {risk!r}")
        tier = entry.get("min_tier", "mass")
        if tier not in TIER_RANK:
            raise _err(f"{where}.min_tier", f"must be one of {list(TIERS)}, got {tier!r}")
        segments = entry.get("segments", list(SEGMENTS))
        out.append(
            Product(
                id=pid,
                name=_text(entry["name"], f"{where}.name"),
                type=_text(entry["type"], f"{where}.type"),
                risk=PRODUCT_RISKS.index(risk) + 1,
                min_tier=TIER_RANK[tier],
                min_aum_fen=_fen(entry.get("min_aum_cny", "0"), f"{where}.min_aum_cny"),
                segments=_choices(segments, f"{where}.segments", SEGMENTS),
                order=i,
            )
        )
    return tuple(out)


_CAMPAIGN_KEYS = frozenset(
    {"id", "start", "end", "tiers", "segments", "kind", "products", "spread_hours"}
)
_CAMPAIGN_REQUIRED = frozenset({"id", "start", "end", "kind"})
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _day(value: Any, where: str) -> int:
    """A TOML date (or a YYYY-MM-DD string) -> local day number."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise _err(where, f"must be a date YYYY-MM-DD, got {value!r}") from None
    if not isinstance(value, date) or hasattr(value, "hour"):
        raise _err(where, f"must be a date YYYY-MM-DD, got {value!r}")
    return value.toordinal() - _EPOCH_ORDINAL


def spread_hours(value: Any, where: str) -> int:
    """Hours (0 < h <= 24) -> ms; the one range check for global and per-campaign spread."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 24:
        raise _err(where, f"must be a number of hours in (0, 24], got {value!r}")
    return int(value * 3_600_000)


def parse_campaigns(
    raw: Any, products: tuple[Product, ...], spread_ms: int
) -> tuple[Campaign, ...]:
    """``[[campaigns]]`` entries -> campaigns; product ids must be in the catalogue."""
    if not isinstance(raw, list):
        raise _err("campaigns", f"must be an array of tables, got {raw!r}")
    known = {p.id for p in products}
    out: list[Campaign] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"campaigns[{i}]"
        _table(entry, where, _CAMPAIGN_KEYS, _CAMPAIGN_REQUIRED)
        cid = _ident(entry["id"], f"{where}.id")
        if cid in seen:
            raise _err(f"{where}.id", f"duplicates campaign {cid!r}")
        seen.add(cid)
        start = _day(entry["start"], f"{where}.start")
        end = _day(entry["end"], f"{where}.end")
        if end < start:
            raise _err(f"{where}.end", "must not be before start")
        kind = entry["kind"]
        if not isinstance(kind, str) or _KIND.fullmatch(kind) is None:
            raise _err(f"{where}.kind", f"must be a snake_case offer kind, got {kind!r}")
        plist = entry.get("products", [])
        if not isinstance(plist, list):
            raise _err(f"{where}.products", f"must be a list of catalogue ids, got {plist!r}")
        for pid in plist:
            if pid not in known:
                raise _err(f"{where}.products", f"names {pid!r}, which is not in the catalogue")
        spread = spread_ms
        if "spread_hours" in entry:
            spread = spread_hours(entry["spread_hours"], f"{where}.spread_hours")
        out.append(
            Campaign(
                id=cid,
                start_day=start,
                end_day=end,
                tiers=_choices(entry.get("tiers", list(TIERS)), f"{where}.tiers", TIERS),
                segments=_choices(
                    entry.get("segments", list(SEGMENTS)), f"{where}.segments", SEGMENTS
                ),
                kind=kind,
                products=tuple(plist),
                spread_ms=spread,
            )
        )
    return tuple(out)
