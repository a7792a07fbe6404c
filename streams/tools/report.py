"""The management report's data: customer profiles from Redis, and what management asks.

Why read Redis and not the state table: the profiles in Redis are the published,
cluster-wide view (every worker writes there) and they are what the CRM shows, so the
report agrees with what relationship managers see. Keys are found with SCAN, never KEYS,
so a report on a production Redis does not block it.

Money stays ``Decimal`` from the profile strings to the sums; only the ratios that are
plotted or exported as a gauge become floats at the very end.

The top-20% shares of AUM and of contribution come from streams/concentration.py,
which the worker's gauges ``tierstream_aum_top20_share`` and
``tierstream_contribution_top20_share`` use too; the key layout comes from
streams/redis_sink.py. Contribution (the bank's estimated annual profit from a
customer, docs/value-models.md) gets the same Lorenz curve as AUM, since the 80/20
analysis a bank runs is on profit, and the customers who bring the most of it are
listed when they are at churn risk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from state.decisions import TIERS

# state.rfm.SEGMENTS are RFM segments, not schemas.events.SEGMENTS (retail/sme customers)
from state.rfm import SEGMENTS as RFM_SEGMENTS
from streams.concentration import top_share
from streams.redis_sink import customer_id_of, scan_profile_keys

#: Tiers whose customers count as high-value for the churn-risk list.
HIGH_VALUE_TIERS = ("affluent", "hnw", "private")


class ProfileError(ValueError):
    """A profile hash in Redis whose fields cannot be read (named in the report)."""


@dataclass(frozen=True)
class ProfileRow:
    """The fields of one profile the report uses, parsed; None where the profile has ""."""

    customer_id: str
    tier: str | None
    aum: Decimal | None
    r_score: int | None
    f_score: int | None
    m_score: int | None
    rfm_segment: str | None
    p_alive: Decimal | None
    clv: Decimal | None
    contribution: Decimal | None = None
    clv_profit: Decimal | None = None


def _dec(fields: dict[str, str], name: str) -> Decimal | None:
    text = fields.get(name, "")
    if text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ProfileError(f"{name}: not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise ProfileError(f"{name}: not a finite number: {text!r}")
    return value


def _score(fields: dict[str, str], name: str) -> int | None:
    text = fields.get(name, "")
    if text == "":
        return None
    if not text.isdigit() or not 1 <= int(text) <= 5:
        raise ProfileError(f"{name}: must be an RFM score 1..5, got {text!r}")
    return int(text)


def parse_profile(customer_id: str, fields: dict[str, str]) -> ProfileRow:
    """Parse one profile hash; raises ProfileError naming the bad field."""
    tier = fields.get("tier", "") or None
    if tier is not None and tier not in TIERS:
        raise ProfileError(f"tier: unknown tier {tier!r} (known: {', '.join(TIERS)})")
    seg = fields.get("rfm_segment", "") or None
    if seg is not None and seg not in RFM_SEGMENTS:
        raise ProfileError(f"rfm_segment: unknown segment {seg!r}")
    p_alive = _dec(fields, "p_alive")
    if p_alive is not None and not 0 <= p_alive <= 1:
        raise ProfileError(f"p_alive: must be within [0, 1], got {p_alive}")
    return ProfileRow(
        customer_id=customer_id,
        tier=tier,
        aum=_dec(fields, "aum_cny"),
        r_score=_score(fields, "r_score"),
        f_score=_score(fields, "f_score"),
        m_score=_score(fields, "m_score"),
        rfm_segment=seg,
        p_alive=p_alive,
        clv=_dec(fields, "clv"),
        contribution=_dec(fields, "contribution_cny"),
        clv_profit=_dec(fields, "clv_profit_cny"),
    )


def _text(b: bytes | str) -> str:
    return b.decode() if isinstance(b, bytes) else b


@dataclass
class LoadedProfiles:
    rows: list[ProfileRow] = field(default_factory=list)
    #: (customer id, reason) of every profile that could not be read.
    problems: list[tuple[str, str]] = field(default_factory=list)


async def load_profiles(client: Any, prefix: str) -> LoadedProfiles:
    """Every profile under ``prefix`` (a ``redis.asyncio`` client), parsed.

    A profile that cannot be parsed is not silently dropped: it is listed in
    ``problems`` and the report shows it.
    """
    out = LoadedProfiles()
    async for keys in scan_profile_keys(client, prefix):
        pipe = client.pipeline(transaction=False)
        for k in keys:
            pipe.hgetall(k)
        for key, raw in zip(keys, await pipe.execute(), strict=True):
            cid = customer_id_of(prefix, key)
            if not raw:  # deleted between SCAN and HGETALL
                continue
            fields = {_text(f): _text(v) for f, v in raw.items()}
            try:
                out.rows.append(parse_profile(cid, fields))
            except ProfileError as exc:
                out.problems.append((cid, str(exc)))
    out.rows.sort(key=lambda r: r.customer_id)
    return out


def lorenz_curve(values_in: Iterable[Decimal]) -> tuple[list[float], list[float]]:
    """Points of the Lorenz curve: cumulative share of customers (poorest first) against
    cumulative share of the value (AUM, contribution), both from 0 to 1 (negative
    values counted as zero)."""
    values = sorted(max(v, Decimal(0)) for v in values_in)
    total = sum(values, Decimal(0))
    n = len(values)
    xs, ys = [0.0], [0.0]
    running = Decimal(0)
    for i, v in enumerate(values, 1):
        running += v
        xs.append(i / n)
        ys.append(float(running / total) if total else i / n)
    return xs, ys


@dataclass(frozen=True)
class TierClv:
    tier: str
    customers: int
    with_clv: int
    total: Decimal
    mean: Decimal | None
    median: Decimal | None


@dataclass(frozen=True)
class Report:
    """Everything the charts and the summary show, computed from the rows."""

    customers: int
    tier_counts: dict[str, int]
    total_aum: Decimal
    top20_share: float
    lorenz: tuple[list[float], list[float]]
    #: rfm_grid[r - 1][f - 1] = customers with that recency and frequency score.
    rfm_grid: list[list[int]]
    segment_counts: dict[str, int]
    clv_by_tier: list[TierClv]
    churn_risk: list[ProfileRow]
    problems: list[tuple[str, str]]
    #: contribution (issue 22): total, top-20% share, Lorenz curve, per tier, and the
    #: customers bringing the most of it who are at churn risk
    total_contribution: Decimal = Decimal(0)
    contribution_top20_share: float = 0.0
    contribution_lorenz: tuple[list[float], list[float]] = ([0.0], [0.0])
    contribution_by_tier: dict[str, Decimal] = field(default_factory=dict)
    contribution_at_risk: list[ProfileRow] = field(default_factory=list)


def _median(values: Sequence[Decimal]) -> Decimal | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def build_report(
    loaded: LoadedProfiles, churn_top: int = 20, churn_line: Decimal = Decimal("0.3")
) -> Report:
    """Aggregate the parsed profiles into the report's figures."""
    rows = loaded.rows
    tiers = Counter(r.tier or "none" for r in rows)
    tier_counts = {t: tiers.get(t, 0) for t in TIERS}
    if tiers.get("none"):
        tier_counts["none"] = tiers["none"]
    aums = [r.aum for r in rows if r.aum is not None]
    grid = [[0] * 5 for _ in range(5)]
    for r in rows:
        if r.r_score is not None and r.f_score is not None:
            grid[r.r_score - 1][r.f_score - 1] += 1
    segs = Counter(r.rfm_segment for r in rows if r.rfm_segment)
    clv = []
    for t in TIERS:
        in_tier = [r for r in rows if r.tier == t]
        values = [r.clv for r in in_tier if r.clv is not None]
        total = sum(values, Decimal(0))
        clv.append(
            TierClv(
                tier=t,
                customers=len(in_tier),
                with_clv=len(values),
                total=total,
                mean=(total / len(values)).quantize(Decimal("0.01")) if values else None,
                median=_median(values),
            )
        )
    # High value first by churn risk (lowest P(alive)), then by AUM at stake.
    at_risk = sorted(
        (r for r in rows if r.tier in HIGH_VALUE_TIERS and r.p_alive is not None),
        key=lambda r: (r.p_alive, -(r.aum or Decimal(0)), r.customer_id),
    )
    contributions = [r.contribution for r in rows if r.contribution is not None]
    by_tier = {t: Decimal(0) for t in TIERS}
    for r in rows:
        if r.contribution is not None and r.tier in by_tier:
            by_tier[r.tier] += r.contribution
    # The customers who bring the most, at churn risk (P(alive) below the churn line
    # the rules alert at), most profit at stake first.
    valuable = sorted(
        (
            r
            for r in rows
            if r.contribution is not None and r.p_alive is not None and r.p_alive < churn_line
        ),
        key=lambda r: (-(r.contribution or Decimal(0)), r.p_alive, r.customer_id),
    )
    return Report(
        customers=len(rows),
        tier_counts=tier_counts,
        total_aum=sum(aums, Decimal(0)),
        top20_share=top_share(aums, 0.2),
        lorenz=lorenz_curve(aums),
        rfm_grid=grid,
        segment_counts={s: segs.get(s, 0) for s in RFM_SEGMENTS},
        clv_by_tier=clv,
        churn_risk=at_risk[:churn_top],
        problems=list(loaded.problems),
        total_contribution=sum(contributions, Decimal(0)),
        contribution_top20_share=top_share(contributions, 0.2),
        contribution_lorenz=lorenz_curve(contributions),
        contribution_by_tier=by_tier,
        contribution_at_risk=valuable[:churn_top],
    )
