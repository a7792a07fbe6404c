"""The rules: every threshold the core decides by, loaded from one TOML file.

Why one frozen object: the core is pure, so everything it decides by must come in
through its arguments; and the rules' ``version`` goes into every decision so a tier
change can always be traced to the exact thresholds that made it. Defaults live in
the packaged ``rules_default.toml`` (documented in docs/rules.md); a user file
overrides individual keys. Bad configuration fails at start-up with a ValueError
naming the key, never half-way through a stream.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from itertools import pairwise
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from schemas.decoder import MIN_FIELD_CHARS, SCHEMA_ID_CHARS, YEAR_RANGE
from schemas.events import CONTACT_OUTCOMES, TRANSACTION_TYPES
from state.catalogue import Campaign, Product, parse_campaigns, parse_catalogue, spread_hours
from state.decisions import TIER_RANK, TIERS
from state.limits import Limits, state_size_bound
from state.rules_reader import TableReader, cny_to_fen
from state.rules_value import value_and_behaviour
from state.value import BgNbdParams, GammaGammaParams

OFFER_KINDS = (
    "wealth_products",
    "relationship_manager",
    "private_banking_invitation",
    "sme_credit",
    "digital_banking",
    "branch_priority",
    "birthday_greeting",
    "reactivation",
    "relationship_review",
    "risk_assessment_due",
    "campaign",
)
ALERT_KINDS = (
    "large_outflow",
    "aum_drop",
    "high_value_downgrade",
    "suitability_mismatch",
    "churn_risk",
    "dormant_high_value",
    "rfm_slipping",
)
RISK_TYPES = ("C1", "C2", "C3", "C4", "C5")
TIER_BASES = ("current", "avg_daily")
#: ``tiers.review``: when downgrades may be applied (upgrades always apply at once).
TIER_REVIEWS = ("none", "month", "quarter")

DAY_MS = 86_400_000
_OFFSET_SLOT_MS = 900_000  # UTC offsets only change on quarter-hour instants
_OFFSET_CACHE_MAX = 100_000

#: Keys whose tables are open (any key allowed); everything else must exist in defaults.
_OPEN_TABLES = frozenset(
    {"fx", "tiers.behaviour.affluent", "tiers.behaviour.hnw", "tiers.behaviour.private"}
)
#: Keys added after rule files without a version were in use: at their defaults they
#: stay out of the derived version's hash (load_rules), so such a file keeps its version.
_LATER_KEYS = (
    "limits",
    # offer responses (issue 23)
    "offers.after_decline_days",
    "offers.answerable_offers",
    # tier policies (issue 21)
    "tiers.min_days_in_tier",
    "tiers.downgrade_grace_days",
    "tiers.review",
    # customer value and tier policy (issue 22)
    "tiers.inflow_months",
    "tiers.behaviour",
    "offers.digital_banking_max_avg_cny",
    "offers.branch_priority_min_transactions",
    "offers.branch_priority_share_over",
    "offers.branch_priority_min_avg_cny",
    "offers.cooldown_days.branch_priority",
    "alerts.cooldown_days.rfm_slipping",
    "rfm.monetary",
    "value.deposit_nim",
    "value.wealth_fee_rate",
    "value.loan_spread",
    "value.card_interchange",
    "value.fees",
    "care.slipping_segments",
    "care.slipping_min_tier",
)


@dataclass(frozen=True)
class Rules:
    """All thresholds, tables and model parameters of the core (see docs/rules.md).

    Money thresholds are ``Decimal`` CNY; the ``*_fen`` twins (integer fen) are derived
    once here so the hot path compares integers.
    """

    version: str
    timezone: str
    # tiers
    tier_basis: str
    tier_avg_days: int
    downgrade_band: Decimal
    tier_floors: Mapping[str, Decimal]  # tier -> CNY floor ("mass" -> 0)
    #: downgrade policies (state/tier_policy.py): days in a tier before a downgrade,
    #: days the basis must stay below the threshold, and the review cadence
    tier_min_days: int
    tier_grace_days: int
    tier_review: str
    # money
    fx: Mapping[str, Decimal]  # currency -> CNY per unit
    # windows / dedup
    window_days: int
    exclude_types: frozenset[str]
    dedup_size: int
    dedup_days: int
    # offers
    offer_cooldown_days: Mapping[str, int]
    digital_banking_max_age: int
    digital_banking_share_over: Decimal
    digital_banking_min_transactions: int
    # offer responses (state/responses.py)
    offer_after_decline_days: Mapping[str, int]  # kind -> no new offer for N days
    answerable_offers: int  # the customer's latest N offers a response can name
    # alerts
    large_outflow_ratio: Decimal
    large_outflow_amount_cny: Decimal
    aum_drop_ratio: Decimal
    aum_drop_critical_ratio: Decimal
    aum_drop_days: int
    churn_p_alive: float
    alert_cooldown_days: Mapping[str, int]
    # rfm
    rfm_recency_days: tuple[int, int, int, int]
    rfm_frequency: tuple[int, int, int, int]
    rfm_monetary_cny: tuple[Decimal, Decimal, Decimal, Decimal]
    # risk
    assessment_validity_days: int
    risk_score_cutoffs: tuple[int, int, int, int]
    risk_min_experience_years: float
    risk_inexperienced_cap: str
    # value models
    bg_nbd: BgNbdParams
    gamma_gamma: GammaGammaParams
    clv_period_days: int
    clv_horizon_periods: int
    clv_discount_rate: float
    # relationship care (time-driven triggers) and suitable recommendations
    dormancy_days: int
    dormancy_min_tier: int  # tier rank
    cadence_days: Mapping[str, int]  # tier -> review every N days without contact (0 = off)
    contact_outcomes: frozenset[str]  # contact outcomes that reset the review cadence
    campaign_spread_ms: int
    catalogue: tuple[Product, ...]
    campaigns: tuple[Campaign, ...]
    # bounds on what inputs control (state/limits.py)
    limits: Limits
    # customer value and tier policy (issue 22; docs/value-models.md, docs/rules.md)
    deposit_nim: Decimal  # annual, on deposit balances
    wealth_fee_rate: Decimal  # annual, on wealth/fund/bond/insurance balances
    loan_spread: Decimal  # annual, on loans outstanding and overdrawn deposits
    card_interchange: Decimal  # on card payments
    transaction_fees_fen: Mapping[str, int]  # transaction type -> fen per transaction
    #: tier -> behaviour criterion -> floor in fen (no entry: AUM only)
    tier_behaviour: Mapping[str, Mapping[str, int]]
    inflow_months: int
    rfm_monetary: str
    slipping_segments: frozenset[str]
    slipping_min_tier: int  # tier rank
    digital_banking_max_avg_fen: int
    branch_priority_min_transactions: int
    branch_priority_share_over: Decimal
    branch_priority_min_avg_fen: int

    # derived (integer fen / ms), filled in __post_init__
    tier_floors_fen: tuple[int, ...] = field(init=False, repr=False, compare=False)
    large_outflow_amount_fen: int = field(init=False, repr=False, compare=False)
    #: per tier rank: the basis (fen) must fall strictly below this to leave the tier
    tier_down_fen: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    rfm_monetary_fen: tuple[int, ...] = field(init=False, repr=False, compare=False)
    #: exact fractions (numerator, denominator) of 1 - aum_drop ratios, for integer maths
    aum_drop_keep: tuple[int, int] = field(init=False, repr=False, compare=False)
    aum_drop_critical_keep: tuple[int, int] = field(init=False, repr=False, compare=False)
    _offsets: dict[int, int] = field(init=False, repr=False, compare=False)
    _day_starts: dict[int, int] = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    #: every offer kind these rules can emit (the fixed kinds and the campaigns' kinds)
    offer_kinds: frozenset[str] = field(init=False, repr=False, compare=False)
    campaign_ids: frozenset[str] = field(init=False, repr=False, compare=False)
    #: everything a tier decision depends on: two versions with the same key tier
    #: every customer alike, so switching between them re-evaluates nobody
    tier_key: tuple[object, ...] = field(init=False, repr=False, compare=False)
    #: whether any downgrade policy is on (the hot path skips the policy otherwise)
    tier_policies: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "tier_floors_fen", tuple(cny_to_fen(self.tier_floors[t]) for t in TIERS))
        keep = 1 - self.downgrade_band
        s(self, "tier_down_fen", tuple(Decimal(f) * keep for f in self.tier_floors_fen))
        s(self, "large_outflow_amount_fen", cny_to_fen(self.large_outflow_amount_cny))
        s(self, "rfm_monetary_fen", tuple(cny_to_fen(m) for m in self.rfm_monetary_cny))
        s(self, "aum_drop_keep", (1 - self.aum_drop_ratio).as_integer_ratio())
        s(self, "aum_drop_critical_keep", (1 - self.aum_drop_critical_ratio).as_integer_ratio())
        s(self, "_offsets", {})
        s(self, "_day_starts", {})
        s(self, "_zone", ZoneInfo(self.timezone))
        s(self, "offer_kinds", frozenset(OFFER_KINDS) | {c.kind for c in self.campaigns})
        s(self, "campaign_ids", frozenset(c.id for c in self.campaigns))
        s(
            self,
            "tier_key",
            (
                self.timezone,
                self.tier_basis,
                self.tier_avg_days if self.tier_basis == "avg_daily" else 0,
                str(self.downgrade_band),
                self.tier_floors_fen,
                self.tier_min_days,
                self.tier_grace_days,
                self.tier_review,
            ),
        )
        s(
            self,
            "tier_policies",
            bool(self.tier_min_days or self.tier_grace_days or self.tier_review != "none"),
        )

    def offer_cooldown_ms(self, kind: str) -> int:
        """The frequency cap of an offer kind; campaign kinds not listed under
        ``offers.cooldown_days`` share the ``campaign`` entry."""
        days = self.offer_cooldown_days.get(kind)
        if days is None:
            days = self.offer_cooldown_days["campaign"]
        return days * DAY_MS

    def after_decline_ms(self, kind: str) -> int:
        """How long a declined kind is not offered again; campaign kinds not listed
        under ``offers.after_decline_days`` share the ``campaign`` entry."""
        days = self.offer_after_decline_days.get(kind)
        if days is None:
            days = self.offer_after_decline_days["campaign"]
        return days * DAY_MS

    def day_start_ms(self, day: int) -> int:
        """Epoch ms of local midnight starting local day ``day`` (cached).

        Where midnight does not exist (a DST jump at 00:00) it is the first instant of
        the day; ``local_day(day_start_ms(d)) == d`` holds for every zone.
        """
        ms = self._day_starts.get(day)
        if ms is None:
            if len(self._day_starts) >= _OFFSET_CACHE_MAX:
                self._day_starts.clear()
            guess = day * DAY_MS - self._utcoffset_ms(day * DAY_MS)
            # offsets may differ between the guess and the real midnight: settle it
            ms = day * DAY_MS - self._utcoffset_ms(guess)
            while self.local_day(ms) < day:
                ms += _OFFSET_SLOT_MS
            while self.local_day(ms - 1) >= day:
                ms -= _OFFSET_SLOT_MS
            self._day_starts[day] = ms
        return ms

    def local_day(self, ts_ms: int) -> int:
        """Local calendar day number (days since 1970-01-01 local) of an event time.

        The UTC offset is cached per UTC day (zoneinfo costs microseconds per call, a
        dict lookup tens of nanoseconds); on the rare day whose offset changes (DST),
        it is looked up per quarter hour instead -- offsets change on such instants.
        """
        off = self._offsets.get(ts_ms // DAY_MS)
        if off is None:
            off = self._offset_slow(ts_ms)
        return (ts_ms + off) // DAY_MS

    def _offset_slow(self, ts_ms: int) -> int:
        utc_day = ts_ms // DAY_MS
        start = self._utcoffset_ms(utc_day * DAY_MS)
        end = self._utcoffset_ms((utc_day + 1) * DAY_MS - 1)
        if len(self._offsets) >= _OFFSET_CACHE_MAX:
            self._offsets.clear()
        if start == end:
            self._offsets[utc_day] = start
            return start
        return self._utcoffset_ms(ts_ms // _OFFSET_SLOT_MS * _OFFSET_SLOT_MS)

    def _utcoffset_ms(self, ts_ms: int) -> int:
        dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(self._zone)
        utcoff = dt.utcoffset()
        return int(utcoff.total_seconds() * 1000) if utcoff is not None else 0


# --------------------------------------------------------------------------- loading


def _default_table() -> dict[str, Any]:
    text = resources.files("state").joinpath("rules_default.toml").read_text("utf-8")
    return tomllib.loads(text)


def _merge(base: dict[str, Any], over: Mapping[str, Any], prefix: str) -> None:
    """Overlay ``over`` on ``base`` in place; unknown keys are typos, so they fail."""
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            if prefix.rstrip(".") in _OPEN_TABLES:
                base[key] = value
                continue
            raise ValueError(f"rules: unknown key '{dotted}'")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"rules: '{dotted}' must be a table")
            _merge(base[key], value, f"{dotted}.")
        else:
            base[key] = value


def _build(table: dict[str, Any], version: str) -> Rules:
    r = TableReader(table)
    tz = r.string("timezone")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"rules: 'timezone' is not a known IANA zone: {tz!r}") from None

    floors = {"mass": Decimal(0)}
    for t in TIERS[1:]:
        floors[t] = r.decimal(f"tiers.{t}", lo=Decimal("0.01"))
    for lower, upper in pairwise(TIERS[1:]):
        if floors[upper] <= floors[lower]:
            raise ValueError(f"rules: 'tiers.{upper}' must be above 'tiers.{lower}'")

    fx_raw = r.raw("fx")
    fx: dict[str, Decimal] = {}
    for ccy in sorted(fx_raw):
        if len(ccy) != 3 or not ccy.isalpha() or not ccy.isupper():
            raise ValueError(f"rules: 'fx.{ccy}' is not an ISO 4217 code")
        fx[ccy] = r.decimal(f"fx.{ccy}", lo=Decimal("0"))
        if fx[ccy] == 0:
            raise ValueError(f"rules: 'fx.{ccy}' must be > 0")
    if fx.get("CNY") != Decimal(1):
        raise ValueError("rules: 'fx.CNY' must be 1 (AUM is in CNY)")

    excl = r.raw("windows.exclude_types")
    if not isinstance(excl, list) or not all(x in TRANSACTION_TYPES for x in excl):
        raise ValueError(
            f"rules: 'windows.exclude_types' must list transaction types {TRANSACTION_TYPES}"
        )

    offer_cd = {k: r.integer(f"offers.cooldown_days.{k}") for k in OFFER_KINDS}
    declined = {k: r.integer(f"offers.after_decline_days.{k}") for k in OFFER_KINDS}
    alert_cd = {k: r.integer(f"alerts.cooldown_days.{k}") for k in ALERT_KINDS}

    try:
        bg = BgNbdParams(*(r.positive(f"value.bg_nbd.{k}") for k in ("r", "alpha", "a", "b")))
        gg = GammaGammaParams(*(r.positive(f"value.gamma_gamma.{k}") for k in ("p", "q", "v")))
    except ValueError as e:
        if str(e).startswith("rules:"):
            raise
        raise ValueError(f"rules: 'value': {e}") from None

    care = _care(r)
    catalogue = parse_catalogue(r.raw("catalogue"))
    spread_ms = spread_hours(r.raw("care.campaign_spread_hours"), "care.campaign_spread_hours")
    campaigns = parse_campaigns(r.raw("campaigns"), catalogue, spread_ms)
    rules = Rules(
        version=version,
        timezone=tz,
        tier_basis=r.string("tiers.basis", TIER_BASES),
        tier_avg_days=r.integer("tiers.avg_days", 1),
        downgrade_band=r.ratio("tiers.downgrade_band"),
        tier_floors=MappingProxyType(floors),
        tier_min_days=r.integer("tiers.min_days_in_tier"),
        tier_grace_days=r.integer("tiers.downgrade_grace_days"),
        tier_review=r.string("tiers.review", TIER_REVIEWS),
        fx=MappingProxyType(fx),
        window_days=r.integer("windows.days", 1),
        exclude_types=frozenset(excl),
        dedup_size=r.integer("dedup.size", 1),
        dedup_days=r.integer("dedup.days", 0),
        offer_cooldown_days=MappingProxyType(offer_cd),
        digital_banking_max_age=r.integer("offers.digital_banking_max_age"),
        digital_banking_share_over=r.ratio("offers.digital_banking_share_over"),
        digital_banking_min_transactions=r.integer("offers.digital_banking_min_transactions", 1),
        offer_after_decline_days=MappingProxyType(declined),
        answerable_offers=r.integer("offers.answerable_offers", 1),
        large_outflow_ratio=r.ratio("alerts.large_outflow_ratio"),
        large_outflow_amount_cny=r.decimal("alerts.large_outflow_amount_cny", lo=Decimal("0.01")),
        aum_drop_ratio=r.ratio("alerts.aum_drop_ratio"),
        aum_drop_critical_ratio=r.ratio("alerts.aum_drop_critical_ratio"),
        aum_drop_days=r.integer("alerts.aum_drop_days", 1),
        churn_p_alive=r.number("alerts.churn_p_alive", 0.0, 1.0),
        alert_cooldown_days=MappingProxyType(alert_cd),
        rfm_recency_days=r.ascending("rfm.recency_days", "int"),
        rfm_frequency=r.ascending("rfm.frequency", "int"),
        rfm_monetary_cny=r.ascending("rfm.monetary_cny", "decimal"),
        assessment_validity_days=r.integer("risk.assessment_validity_days", 1),
        risk_score_cutoffs=r.ascending("risk.score_cutoffs", "int"),
        risk_min_experience_years=r.number("risk.min_experience_years"),
        risk_inexperienced_cap=r.string("risk.inexperienced_cap", RISK_TYPES),
        bg_nbd=bg,
        gamma_gamma=gg,
        clv_period_days=r.integer("value.period_days", 1),
        clv_horizon_periods=r.integer("value.horizon_periods", 0),
        clv_discount_rate=r.number("value.discount_rate", 0.0, 10.0),
        dormancy_days=r.integer("care.dormancy_days", 1),
        dormancy_min_tier=TIER_RANK[r.string("care.dormancy_min_tier", TIERS)],
        cadence_days=MappingProxyType(care["cadence"]),
        contact_outcomes=care["outcomes"],
        campaign_spread_ms=spread_ms,
        catalogue=catalogue,
        campaigns=campaigns,
        limits=_limits(r),
        **value_and_behaviour(r),
    )
    bound = state_size_bound(rules)
    if bound > rules.limits.max_state_bytes:
        raise ValueError(
            f"rules: a customer's state can reach {bound} bytes under these rules, more than "
            f"'limits.max_state_bytes' = {rules.limits.max_state_bytes}: lower "
            "'limits.max_accounts' (or 'limits.max_id_chars', 'dedup.size', 'windows.days')"
        )
    return rules


def _limits(r: TableReader) -> Limits:
    """The [limits] table; each bound is checked against what the code can honour."""
    id_chars = r.integer("limits.max_id_chars", 1)
    if id_chars > SCHEMA_ID_CHARS:
        raise ValueError(
            f"rules: 'limits.max_id_chars' must be at most {SCHEMA_ID_CHARS} "
            f"(the schemas' own cap on ids), got {id_chars}"
        )
    lo, hi = YEAR_RANGE
    min_year = r.integer("limits.min_year", lo)
    max_year = r.integer("limits.max_year", min_year)
    if max_year > hi:
        raise ValueError(f"rules: 'limits.max_year' must be at most {hi}, got {max_year}")
    return Limits(
        max_payload_bytes=r.integer("limits.max_payload_bytes", 1),
        max_key_bytes=r.integer("limits.max_key_bytes", 1),
        max_id_chars=id_chars,
        max_field_chars=r.integer("limits.max_field_chars", MIN_FIELD_CHARS),
        min_year=min_year,
        max_year=max_year,
        max_future_skew_ms=r.integer("limits.max_future_skew_ms", 0),
        max_accounts=r.integer("limits.max_accounts", 1),
        max_state_bytes=r.integer("limits.max_state_bytes", 1),
    )


def _care(r: TableReader) -> dict[str, Any]:
    cadence = {t: r.integer(f"care.cadence_days.{t}") for t in TIERS}
    outcomes = r.raw("care.contact_outcomes")
    if not isinstance(outcomes, list) or not all(o in CONTACT_OUTCOMES for o in outcomes):
        raise ValueError(
            f"rules: 'care.contact_outcomes' must list contact outcomes {CONTACT_OUTCOMES}, "
            f"got {outcomes!r}"
        )
    return {"cadence": cadence, "outcomes": frozenset(outcomes)}


def _without_later_defaults(table: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``table`` without the ``_LATER_KEYS`` that are at their defaults (copied where it
    changes), so a rule file's derived version is what it was before they existed."""
    out = dict(table)
    for dotted in _LATER_KEYS:
        *parents, last = dotted.split(".")
        node, default = out, defaults
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                break
            node[part] = child = dict(child)  # a copy: the loaded table stays whole
            node, default = child, default.get(part, {})
        else:
            if last in node and node[last] == default.get(last):
                del node[last]
    return out


def load_rules(path: str | None = None) -> Rules:
    """Packaged defaults, optionally overlaid with the user file at ``path``.

    A user file without its own ``version`` gets the default version plus a short hash
    of the effective table, so two different rule sets never share a version string.
    """
    if path is None:
        return load_rules_text(None)
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"rules: {path} is not valid TOML: {e}") from None
    return load_rules_text(text, path)


def load_rules_text(text: str | None, source: str = "<text>", version: str | None = None) -> Rules:
    """``load_rules`` for rules given as TOML text (``None``: the defaults alone): the
    one loader of start-up, ``tierstream rules publish`` and a worker taking up a
    published version, so all three accept and refuse the same files, with the same
    errors and the same version. ``version``: the version as published (a worker uses
    the one on the record: a version derived from a hash of the defaults must not
    change when an upgrade changes a default)."""
    override = version
    table = _default_table()
    version = table["version"]
    if text is not None:
        try:
            user = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"rules: {source} is not valid TOML: {e}") from None
        _merge(table, user, "")
        if "version" in user:
            version = TableReader(table).string("version")
        else:
            # [limits], the offer-response keys (issue 23), the tier-policy keys (issue
            # 21) and the customer-value keys (issue 22) came after rule files without a
            # version were in use: at their defaults they stay out of the hash, so their
            # derived version (and with it every decision id) is the same as before.
            hashed = _without_later_defaults(table, _default_table())
            digest = hashlib.sha256(orjson.dumps(hashed, option=orjson.OPT_SORT_KEYS))
            version = f"{version}+{digest.hexdigest()[:8]}"
    return _build(table, version if override is None else override)


def rules_digest(text: str | None) -> str:
    """SHA-256 (hex) of the effective table a rules text gives (defaults merged in,
    keys sorted): two texts with the same digest are the same rules, whatever their
    layout, comments or ``version``. Raises ValueError like ``load_rules_text``."""
    table = _default_table()
    if text is not None:
        try:
            _merge(table, tomllib.loads(text), "")
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"rules: not valid TOML: {e}") from None
    table.pop("version", None)
    return hashlib.sha256(orjson.dumps(table, option=orjson.OPT_SORT_KEYS)).hexdigest()
