"""The synthetic bank (streams/tools/simulator.py) and the file side of replay (loader.py).

What must hold for `tierstream simulate` to be useful: the same seed gives the same
bytes; every good record is a valid contract event; faults come in the configured
share and are labelled; the money is realistic (Pareto AUM, designed tier mix) and
exact (balance_after follows the amounts); time shows monthly and daily rhythms; some
customers really move across tier lines. And `--dry-run` output replays byte for byte.
"""

from __future__ import annotations

import importlib.util
from collections import Counter, defaultdict
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.cli import build_parser
from streams.tools.loader import (
    ReplayFileError,
    ReplayStats,
    TokenBucket,
    read_replay_file,
    to_jsonl_line,
    write_jsonl,
)
from streams.tools.simulator import (
    BAD_KINDS,
    DESIGN_TIER_MIX,
    FX_TO_CNY,
    LABEL_DUPLICATE,
    LABEL_LATE,
    LABEL_OK,
    SimConfig,
    SimRecord,
    Simulator,
    format_ts_bank_time,
    is_bad,
    tier_of,
)

CREDIT_TYPES = {"deposit", "transfer_in", "investment_sell", "interest"}
HAVE_DECODER = importlib.util.find_spec("schemas.decoder") is not None
Labelled = list[tuple[str, SimRecord]] | tuple[tuple[str, SimRecord], ...]


def quiet(**kw: Any) -> SimConfig:
    """A config without delivery faults: delivery order is then bookkeeping order."""
    return SimConfig(duplicate_share=0.0, late_share=0.0, **kw)


def take(cfg: SimConfig, n: int) -> list[tuple[str, SimRecord]]:
    return list(Simulator(cfg).labelled(n))


@cache
def long_run(drift_share: float) -> tuple[tuple[str, SimRecord], ...]:
    """~2 simulated months of a small bank without delivery faults (shared by tests)."""
    cfg = quiet(customers=200, seed=3, events_per_day=800, drift_share=drift_share)
    return tuple(Simulator(cfg).labelled(60_000))


def events(recs: Labelled, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for label, r in recs if not is_bad(label) and r.topic == topic]


def initial_aum(recs: Labelled) -> dict[str, Decimal]:
    """AUM in CNY per customer from each account's first snapshot (onboarding)."""
    first: dict[str, dict[str, Any]] = {}
    for ev in events(recs, "balances"):
        first.setdefault(ev["account_id"], ev)
    aum: dict[str, Decimal] = defaultdict(Decimal)
    for ev in first.values():
        if ev["product"] != "loan":
            aum[ev["customer_id"]] += Decimal(ev["balance"]) * FX_TO_CNY[ev["currency"]]
    return aum


# --- determinism -------------------------------------------------------------------------


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    cfg = SimConfig(customers=300, seed=11, bad_share=0.05)
    a = take(cfg, 5000)
    assert a == take(cfg, 5000)
    other = take(SimConfig(customers=300, seed=12, bad_share=0.05), 5000)
    assert [r.value for _, r in a] != [r.value for _, r in other]
    assert orjson.loads(a[0][1].value)["event_id"] == "sim-11-1"


def test_faults_do_not_change_the_good_events() -> None:
    """bad_share draws from its own stream: switching it on only inserts bad records."""
    clean = take(quiet(customers=100, seed=5), 3000)
    dirty = take(quiet(customers=100, seed=5, bad_share=0.3), 4000)
    good = [r for label, r in dirty if not is_bad(label)]
    assert len(good) < 3000 < len(dirty)
    assert good == [r for _, r in clean[: len(good)]]


# --- contract ----------------------------------------------------------------------------


def test_every_good_record_decodes_and_bad_ones_are_rejected() -> None:
    decoder_mod = pytest.importorskip("schemas.decoder")
    decoder = decoder_mod.Decoder()
    recs = take(SimConfig(customers=300, seed=8, bad_share=0.1), 20_000)
    rejected: Counter[str] = Counter()
    for label, rec in recs:
        assert rec.key and rec.key.decode().startswith("C")
        result = decoder.decode(rec.topic, rec.value)
        if is_bad(label):
            if isinstance(result, decoder_mod.DecodeError):
                rejected[label] += 1
            else:
                # Only an unknown currency passes the decoder: the core (which has the FX
                # table) rejects it. Every other kind must fail here.
                assert label == "unknown_currency", (label, rec.value)
                assert result.currency == "XXX"
        else:
            assert not isinstance(result, decoder_mod.DecodeError), (result, rec.value)
            assert result.customer_id == rec.key.decode()
            assert result.ts == rec.ts_ms
    assert set(rejected) == set(BAD_KINDS) - {"unknown_currency"}


def test_wire_format_is_rfc3339_with_offset_and_decimal_strings() -> None:
    recs = take(SimConfig(customers=50, seed=1), 2000)
    txns = events(recs, "transactions")
    assert txns
    for ev in txns:
        assert ev["ts"].endswith("+08:00")
        assert isinstance(ev["amount"], str) and Decimal(ev["amount"]) > 0
        assert Decimal(ev["amount"]) == Decimal(ev["amount"]).quantize(Decimal("0.01"))
        assert isinstance(ev["balance_after"], str)
    assert format_ts_bank_time(1_767_196_800_000) == "2026-01-01T00:00:00.000+08:00"


# --- faults ------------------------------------------------------------------------------


def test_bad_records_come_labelled_at_the_configured_share() -> None:
    recs = take(SimConfig(customers=200, seed=4, bad_share=0.1), 20_000)
    labels = Counter(label for label, _ in recs)
    bad = sum(v for k, v in labels.items() if is_bad(k))
    assert 0.085 < bad / len(recs) < 0.115
    for kind in BAD_KINDS:  # each kind ~1/7 of the bad ones
        assert labels[kind] > bad / len(BAD_KINDS) / 2, labels
    values = {label: r.value for label, r in recs if is_bad(label)}
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(values["non_json"])
    with pytest.raises(UnicodeDecodeError):
        values["invalid_utf8"].decode("utf-8")
    assert b'"XXX"' in values["unknown_currency"]
    assert b'"-' in values["negative_amount"]
    assert take(SimConfig(customers=200, seed=4), 5000)  # bad_share 0: none at all
    assert not any(is_bad(label) for label, _ in take(SimConfig(customers=200, seed=4), 5000))


def test_duplicates_are_exact_redeliveries_and_late_records_go_back_in_time() -> None:
    cfg = SimConfig(customers=200, seed=9, duplicate_share=0.02, late_share=0.02)
    recs = take(cfg, 10_000)
    seen: set[bytes] = set()
    max_ts = 0
    dups = lates = 0
    for label, rec in recs:
        if label == LABEL_DUPLICATE:
            assert rec.value in seen  # same bytes, same event_id, delivered earlier
            dups += 1
        elif label == LABEL_LATE:
            assert rec.ts_ms < max_ts  # out of order: older than something already sent
            assert rec.value not in seen
            lates += 1
        else:
            assert rec.value not in seen
        seen.add(rec.value)
        max_ts = max(max_ts, rec.ts_ms)
    assert dups > 100 and lates > 100
    ok_ts = [r.ts_ms for label, r in recs if label == LABEL_OK]
    assert ok_ts == sorted(ok_ts)  # everything else arrives in event-time order


# --- money -------------------------------------------------------------------------------


def test_aum_is_pareto_and_tier_mix_as_designed() -> None:
    sim = Simulator(quiet(customers=5000, seed=42))
    recs = []
    for label, rec in sim.labelled():
        if rec.ts_ms > sim.onboarding_end_ms:
            break
        recs.append((label, rec))
    aum = initial_aum(recs)
    assert len(aum) == 5000
    values = sorted(aum.values(), reverse=True)
    top = sum(values[: len(values) // 5]) / sum(values)
    assert top >= Decimal("0.6"), top
    mix = Counter(tier_of(v) for v in values)
    for tier, share in DESIGN_TIER_MIX.items():
        assert abs(mix[tier] / len(values) - share) < 0.03, mix
    profiles = events(recs, "customer-profiles")
    sme = sum(p["segment"] == "sme" for p in profiles) / len(profiles)
    consent = sum(p["marketing_consent"] for p in profiles) / len(profiles)
    assert 0.07 < sme < 0.13 and 0.65 < consent < 0.75
    currencies = {e["currency"] for e in events(recs, "balances")}
    assert {"USD", "HKD", "EUR"} <= currencies
    accounts = Counter(e["customer_id"] for e in events(recs, "balances"))
    assert set(accounts.values()) <= {1, 2, 3, 4}


def test_balance_after_follows_the_amounts_exactly() -> None:
    recs = long_run(0.05)
    balance: dict[str, Decimal] = {}
    checked = 0
    # Without delivery faults, delivery order is the simulator's bookkeeping order.
    for _label, rec in recs:
        ev = orjson.loads(rec.value)
        if rec.topic == "balances" and ev["product"] == "deposit":
            if ev["account_id"] in balance:
                assert Decimal(ev["balance"]) == balance[ev["account_id"]], ev
            balance[ev["account_id"]] = Decimal(ev["balance"])
        elif rec.topic == "transactions":
            amount = Decimal(ev["amount"])
            prev = balance[ev["account_id"]]
            expected = prev + amount if ev["type"] in CREDIT_TYPES else prev - amount
            assert Decimal(ev["balance_after"]) == expected, ev
            assert expected >= 0
            balance[ev["account_id"]] = expected
            checked += 1
    assert checked > 40_000


# --- time and behaviour ------------------------------------------------------------------


def _local_hour(ts: str) -> int:
    return int(ts[11:13])


def test_run_covers_months_with_monthly_salaries_and_daily_rhythm() -> None:
    recs = long_run(0.05)
    txns = events(recs, "transactions")
    first, last = recs[0][1].ts_ms, recs[-1][1].ts_ms
    assert (last - first) / 86_400_000 > 50
    # Salaries: one 'deposit' per working-age retail customer per month (Jan and Feb).
    profiles = {p["customer_id"]: p for p in events(recs, "customer-profiles")}
    salaries = Counter((e["customer_id"], e["ts"][:7]) for e in txns if e["type"] == "deposit")
    workers = [
        c
        for c, p in profiles.items()
        if p["segment"] == "retail" and p.get("birth_date") and int(p["birth_date"][:4]) > 1967
    ]
    assert workers
    for cid in workers:
        assert salaries[(cid, "2026-01")] == 1 and salaries[(cid, "2026-02")] == 1, cid
    # Daily rhythm: evenings are busy, nights quiet; card payments peak in the evening.
    by_hour = Counter(_local_hour(e["ts"]) for e in txns if e["type"] == "card_payment")
    assert by_hour[19] + by_hour[20] > 4 * (by_hour[3] + by_hour[4])


def test_channels_follow_age() -> None:
    recs = long_run(0.05)
    born = {p["customer_id"]: p.get("birth_date") for p in events(recs, "customer-profiles")}
    mix: dict[str, Counter[str]] = {"young": Counter(), "old": Counter()}
    for e in events(recs, "transactions"):
        year = born.get(e["customer_id"])
        if year is None:
            continue
        age = 2026 - int(year[:4])
        group = "young" if age < 35 else "old" if age >= 65 else None
        # Card payments go through the merchant (pos/online) whatever the age; the habit
        # shows in what the customer chooses: transfers, trades, cash.
        if group and e["type"] != "card_payment":
            mix[group][e["channel"]] += 1

    def share(group: str, channels: set[str]) -> float:
        return sum(mix[group][c] for c in channels) / sum(mix[group].values())

    assert share("old", {"branch", "atm"}) > share("young", {"branch", "atm"}) + 0.3
    assert share("young", {"mobile", "online"}) > share("old", {"mobile", "online"}) + 0.3


def test_some_customers_drift_across_tiers() -> None:
    def tier_moves(recs: Labelled) -> int:
        start = initial_aum(recs)
        latest: dict[str, tuple[str, str, str, str]] = {}  # account -> cid, product, ccy, bal
        for _label, rec in recs:
            ev = orjson.loads(rec.value)
            if rec.topic == "balances":
                bal = ev["balance"]
            elif rec.topic == "transactions":
                bal = ev["balance_after"]
            else:
                continue
            product = ev.get("product") or latest[ev["account_id"]][1]
            latest[ev["account_id"]] = (ev["customer_id"], product, ev["currency"], bal)
        end: dict[str, Decimal] = defaultdict(Decimal)
        for cid, product, ccy, bal in latest.values():
            if product != "loan":
                end[cid] += Decimal(bal) * FX_TO_CNY[ccy]
        return sum(tier_of(start[c]) != tier_of(end[c]) for c in start)

    drifting = tier_moves(long_run(0.3))
    still = tier_moves(long_run(0.0))
    # Without drift only customers sitting right on a line cross it (market moves, a rare
    # large outflow); with 30% drifters far more move, most of the drifters among them.
    assert still <= 200 * 0.06, still
    assert drifting >= max(3 * still, 200 * 0.3 * 0.5), (drifting, still)


# --- dry-run and replay files --------------------------------------------------------------


def test_dry_run_jsonl_replays_byte_for_byte(tmp_path: Path) -> None:
    recs = take(SimConfig(customers=100, seed=2, bad_share=0.1), 3000)
    path = tmp_path / "sim.jsonl"
    with path.open("wb") as fh:
        assert write_jsonl(iter(recs), fh) == 3000
    stats = ReplayStats()
    back = list(read_replay_file(str(path), stats=stats))
    assert [(r.topic, r.key, r.value) for r in back] == [(r.topic, r.key, r.value) for _, r in recs]
    bad = sum(is_bad(label) for label, _ in recs)
    assert stats.raw == bad and stats.skipped == 0 and stats.malformed == 0
    assert stats.lines == stats.records == 3000
    # Raw records are deliberate and not pre-checked; every good one passes the decoder.
    assert stats.rejected == 0


def test_cli_dry_run_prints_the_simulator_stream(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["simulate", "--customers", "40", "--events", "200", "--seed", "6", "--dry-run"]
    )
    assert args.func(args) == 0
    out = capsysbinary.readouterr().out.splitlines()
    expected = [to_jsonl_line(lbl, r) for lbl, r in take(SimConfig(customers=40, seed=6), 200)]
    assert out == expected


def test_jsonl_replay_keeps_number_literals_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'{"topic":"transactions","event_id":"e1","customer_id":"c1","account_id":"a1",'
        b'"ts":"2026-01-02T03:04:05Z","type":"deposit","amount":12.50,"currency":"CNY",'
        b'"channel":"online","balance_after":1234567.10}\n'
        b"\n"
        b"this is not json\n"
        b'{"topic":"nonsense","event_id":"e2"}\n'
        b'{"topic":"risk-assessments","event_id":"e3","customer_id":"c2",'
        b'"ts":"2026-01-02T03:04:05+08:00","score":"high","investment_experience_years":2}\n'
    )
    stats = ReplayStats()
    recs = list(read_replay_file(str(path), stats=stats))
    assert [r.topic for r in recs] == ["transactions", "risk-assessments"]
    assert recs[0].key == b"c1"
    assert b'"amount":12.50,' in recs[0].value  # literal kept, never through a float
    assert b'"balance_after":1234567.10}' in recs[0].value
    assert b'"topic"' not in recs[0].value
    assert stats.lines == 4 and stats.skipped == 2 and stats.records == 2
    if HAVE_DECODER:  # the mistyped score is forecast as a dead letter
        assert stats.rejected == 1 and "score" in " ".join(stats.examples)
    # With --topic, a non-JSON line is produced as-is so the service dead-letters it.
    forced = list(read_replay_file(str(path), topic="transactions", stats=ReplayStats()))
    assert SimRecord("transactions", b"", b"this is not json", 0) in forced


def test_csv_replay_types_cells_and_requires_a_topic(tmp_path: Path) -> None:
    path = tmp_path / "ra.csv"
    path.write_text(
        "event_id,customer_id,ts,score,investment_experience_years,note\n"
        "e1,c1,2026-01-02T03:04:05+08:00,55,3.50,\n"
        "e2,c2,2026-01-02T03:04:06+08:00,high,1,x\n"
    )
    with pytest.raises(ReplayFileError):
        list(read_replay_file(str(path)))
    stats = ReplayStats()
    recs = list(read_replay_file(str(path), topic="risk-assessments", stats=stats))
    assert recs[0].value == (
        b'{"event_id":"e1","customer_id":"c1","ts":"2026-01-02T03:04:05+08:00",'
        b'"score":55,"investment_experience_years":3.50}'
    )
    assert recs[0].key == b"c1"
    assert b'"score":"high"' in recs[1].value  # kept as text; the service dead-letters it
    assert stats.malformed == 1 and stats.records == 2
    profiles = tmp_path / "p.csv"
    profiles.write_text("topic,event_id,customer_id,ts,segment,marketing_consent\n"
                        "customer-profiles,e9,c9,2026-01-02T03:04:05Z,retail,yes\n")  # fmt: skip
    (rec,) = read_replay_file(str(profiles))
    assert orjson.loads(rec.value)["marketing_consent"] is True


def test_token_bucket_limits_the_rate() -> None:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    bucket = TokenBucket(50.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(105):
        bucket.take()
    # 5 from the initial burst, then 100 at 50/s.
    assert now[0] == pytest.approx(2.0, rel=0.01)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        SimConfig(bad_share=1.5)
    with pytest.raises(ValueError):
        SimConfig(customers=0)
