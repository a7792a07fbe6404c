"""The KPI job's figures on hand-computed periods (streams/tools/kpi.py, kpi_render.py).

The records go through the same contract checks the job applies to what it reads
(schemas/outputs.py for the decisions, the worker's decoder for the responses), and
the expected CSVs below were worked out by hand from the definitions in the module
doc of streams/tools/kpi.py -- not printed by the code under test.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.decoder import DecodeError, Decoder
from schemas.events import OfferResponse
from schemas.outputs import read_output
from schemas.timefmt import format_ts_utc
from state.decisions import derive_event_id
from state.offers import SERVICE_OFFER_KINDS
from state.rules import load_rules
from streams.tools.kpi import KpiInput, Period, compute
from streams.tools.kpi_render import CHARTS, CSV_FILES, Source, write_kpis

RULES = load_rules()  # Asia/Shanghai
DECODER = Decoder()
MARCH = Period.of(date(2026, 3, 1), date(2026, 3, 31), RULES)
_offsets = iter(range(10**6))


def tier_change(cid: str, ts: str, frm: str | None, to: str, cause: str = "") -> dict[str, Any]:
    cause = cause or f"{cid}-{ts}"
    direction = "initial" if frm is None else "upgrade" if _up(frm, to) else "downgrade"
    doc = {
        "event_id": derive_event_id(cid, cause, f"tier:{to}", "r1"),
        "customer_id": cid,
        "ts": ts,
        "from_tier": frm,
        "to_tier": to,
        "direction": direction,
        "cause_event_id": cause,
        "rules_version": "r1",
        "reason": {"basis": "current"},
    }
    return _checked("tier-changes", doc)


def _up(frm: str, to: str) -> bool:
    order = ["mass", "affluent", "hnw", "private"]
    return order.index(to) > order.index(frm)


def offer(cid: str, ts: str, kind: str, tier: str) -> dict[str, Any]:
    cause = f"{cid}-{ts}"
    doc = {
        "event_id": derive_event_id(cid, cause, f"offer:{kind}", "r1"),
        "customer_id": cid,
        "ts": ts,
        "kind": kind,
        "tier": tier,
        "purpose": "service" if kind in SERVICE_OFFER_KINDS else "marketing",  # issue 22
        "cause_event_id": cause,
        "rules_version": "r1",
        "reason": {},
    }
    return _checked("offers", doc)


def _checked(topic: str, doc: dict[str, Any]) -> dict[str, Any]:
    rec = read_output(topic, doc["customer_id"].encode(), orjson.dumps(doc))
    assert not isinstance(rec, DecodeError), rec
    return rec


def response(
    rid: str, cid: str, ts: str, offer_rec: dict[str, Any] | str, outcome: str
) -> OfferResponse:
    offer_id = offer_rec if isinstance(offer_rec, str) else offer_rec["event_id"]
    doc = {
        "event_id": rid,
        "customer_id": cid,
        "ts": ts,
        "offer_event_id": offer_id,
        "outcome": outcome,
    }
    ev = DECODER.decode("offer-responses", orjson.dumps(doc))
    assert isinstance(ev, OfferResponse), ev
    return ev


def _z(day: str, time: str = "12:00:00") -> str:
    """A local (+08:00) time written as the worker writes it: UTC with milliseconds."""
    local = datetime.fromisoformat(f"{day}T{time}+08:00")
    return format_ts_utc((local - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1))


Feed = list[tuple[str, Any]]


def march_records() -> Feed:
    """The hand-computed period's records: March 2026, local days in Asia/Shanghai."""
    out: Feed = []

    def tc(*args: Any) -> None:
        out.append(("tier-change", (tier_change(*args), next(_offsets))))

    # A: mass before the period, upgraded twice within it -> mass -> hnw
    tc("A", _z("2026-02-10"), None, "mass")
    tc("A", _z("2026-03-05"), "mass", "affluent")
    tc("A", _z("2026-03-05"), "mass", "affluent")  # redelivered: the same decision
    tc("A", _z("2026-03-20"), "affluent", "hnw")
    # B: no tier before the period -> none -> affluent
    tc("B", _z("2026-03-10"), None, "affluent")
    # C: hnw, down to affluent within -> hnw -> affluent
    tc("C", _z("2026-01-05"), None, "hnw")
    tc("C", _z("2026-03-15"), "hnw", "affluent")
    # D: private all along (its only change long before)
    tc("D", _z("2025-12-01"), None, "private")
    # E: affluent, down to mass in the last minutes of the last day, back up just after
    tc("E", _z("2026-02-01"), None, "affluent")
    tc("E", _z("2026-03-31", "23:30:00"), "affluent", "mass")
    tc("E", _z("2026-04-01", "00:10:00"), "mass", "affluent")
    # F: first tier after the period -> left out
    tc("F", _z("2026-04-02"), None, "mass")
    # G: first tier at the very first instant of the period: not before it -> none
    tc("G", _z("2026-03-01", "00:00:00"), None, "mass")
    # H: hnw from the last millisecond before the period, private within it
    tc("H", _z("2026-01-01"), None, "affluent")
    tc("H", _z("2026-02-28", "23:59:59.999"), "affluent", "hnw")
    tc("H", _z("2026-03-10"), "hnw", "private")

    o1 = offer("A", _z("2026-03-05"), "wealth_products", "affluent")
    o2 = offer("A", _z("2026-03-20"), "relationship_manager", "hnw")
    o3 = offer("B", _z("2026-03-10"), "wealth_products", "affluent")
    o4 = offer("C", _z("2026-02-20"), "wealth_products", "affluent")  # before the period
    o5 = offer("H", _z("2026-03-10"), "private_banking_invitation", "private")  # unanswered
    o6 = offer("G", _z("2026-03-31", "23:59:59.999"), "birthday_greeting", "mass")
    o7 = offer("E", _z("2026-04-01", "00:00:00"), "wealth_products", "affluent")  # after
    out += [("offer", o) for o in (o1, o2, o3, o4, o5, o6, o7, o1)]  # o1 redelivered

    out += [
        ("response", ev)
        for ev in (
            response("r1", "A", _z("2026-03-06"), o1, "accepted"),
            response("r2", "A", _z("2026-04-03"), o2, "ignored"),  # after the period ...
            response("r3", "A", _z("2026-04-05"), o2, "accepted"),  # ... and the latest
            response("r4", "B", _z("2026-03-12"), o3, "declined"),
            response("r4", "B", _z("2026-03-12"), o3, "declined"),  # sent twice
            response("r5", "C", _z("2026-03-02"), o4, "accepted"),  # to an offer outside
            response("r6", "G", _z("2026-04-14"), o6, "ignored"),  # after the period
            response("r7", "A", _z("2026-03-07"), "f" * 32, "accepted"),  # unknown offer
            response("r8", "B", _z("2026-03-07"), o1, "accepted"),  # A's offer
            response("r9", "A", _z("2026-03-19"), o2, "declined"),  # before o2 was made
        )
    ]
    return out


def feed(records: Feed) -> KpiInput:
    inp = KpiInput(MARCH)
    for what, item in records:
        if what == "tier-change":
            inp.add_tier_change(item[0], 0, item[1])
        elif what == "offer":
            inp.add_offer(item)
        else:
            inp.add_response(item)
    return inp


def march() -> KpiInput:
    return feed(march_records())


EXPECTED_MIGRATION = """from_tier,to_tier,customers
none,mass,1
none,affluent,1
none,hnw,0
none,private,0
mass,mass,0
mass,affluent,0
mass,hnw,1
mass,private,0
affluent,mass,1
affluent,affluent,0
affluent,hnw,0
affluent,private,0
hnw,mass,0
hnw,affluent,1
hnw,hnw,0
hnw,private,1
private,mass,0
private,affluent,0
private,hnw,0
private,private,1
"""

EXPECTED_CONVERSION = """kind,tier,offers,accepted,declined,ignored,conversion
birthday_greeting,mass,1,0,0,1,0.0000
private_banking_invitation,private,1,0,0,0,0.0000
relationship_manager,hnw,1,1,0,0,1.0000
wealth_products,affluent,2,1,1,0,0.5000
"""

EXPECTED_RETENTION = """tier,customers,same_or_higher,moved_down,retention
mass,1,1,0,1.0000
affluent,1,0,1,0.0000
hnw,2,1,1,0.5000
private,1,1,0,1.0000
"""


def test_the_hand_computed_period(tmp_path: Path) -> None:
    inp = march()
    kpis = compute(inp)
    assert kpis.customers == 7  # F's first tier came after the period
    stats = kpis.responses
    assert stats.to_period_offers == 5  # r1, r2, r3, r4 (once), r6
    assert stats.after_period == 3  # r2, r3, r6
    assert stats.to_other_offers == 1  # r5
    assert (stats.offers_answered, stats.offers_unanswered) == (4, 1)  # o5 unanswered
    assert stats.unmatched == {"unknown_offer": 1, "other_customer": 1, "before_offer": 1}
    assert inp.duplicates == {"offers": 1, "offer-responses": 1}

    source = Source("127.0.0.1:9092", {"offers": ("p.offers", 8)}, RULES.timezone, 0.5)
    written = write_kpis(kpis, inp, tmp_path, source)
    assert {p.name for p in written} == {*CSV_FILES, *CHARTS, "report.md", "report.html"}
    assert (tmp_path / "migration.csv").read_text() == EXPECTED_MIGRATION
    assert (tmp_path / "conversion.csv").read_text() == EXPECTED_CONVERSION
    assert (tmp_path / "retention.csv").read_text() == EXPECTED_RETENTION
    for chart in CHARTS:
        assert (tmp_path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "report.md").read_text()
    assert "# Tiering KPIs, 2026-03-01 – 2026-03-31" in md
    assert "Asia/Shanghai" in md and "`p.offers` (8 offsets)" in md
    assert "| unmatched: unknown_offer | 1 |" in md
    assert "| of which stamped after the period | 3 |" in md
    assert "2 moved up, 2 moved down, 2 got their first tier" in md
    assert "5 offers made in the period, 2 accepted (40.0%)" in md
    html = (tmp_path / "report.html").read_text()
    assert "<img src='flow.png'" in html and "wealth_products" in html


def test_compute_can_run_twice_on_the_same_input() -> None:
    inp = march()
    assert compute(inp) == compute(inp)


def test_the_order_records_arrive_in_does_not_matter() -> None:
    """Responses before their offers, the topics read in any order: the same figures."""
    records = march_records()
    assert compute(feed(records[::-1])) == compute(feed(records))
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    assert compute(feed(shuffled)) == compute(feed(records))


def test_conversion_is_rounded_half_even_to_four_decimals() -> None:
    inp = KpiInput(MARCH)
    offers = [
        offer(f"K{i}", _z("2026-03-03", f"10:00:0{i}"), "sme_credit", "hnw") for i in range(3)
    ]
    for o in offers:
        inp.add_offer(o)
    inp.add_response(response("x1", "K0", _z("2026-03-04"), offers[0], "accepted"))
    inp.add_response(response("x2", "K1", _z("2026-03-04"), offers[1], "accepted"))
    (row,) = compute(inp).conversion
    assert (row.offers, row.accepted, str(row.conversion)) == (3, 2, "0.6667")


def test_equal_times_go_to_the_larger_event_id_and_the_latest_wins() -> None:
    inp = KpiInput(MARCH)
    o = offer("A", _z("2026-03-03"), "sme_credit", "hnw")
    inp.add_offer(o)
    inp.add_response(response("b", "A", _z("2026-03-04"), o, "declined"))
    inp.add_response(response("a", "A", _z("2026-03-04"), o, "accepted"))
    (row,) = compute(inp).conversion
    assert (row.accepted, row.declined) == (0, 1)  # "b" > "a"


def test_malformed_records_are_counted_with_their_reason_and_left_out(tmp_path: Path) -> None:
    inp = march()
    good = tier_change("Z", _z("2026-03-03"), None, "private")
    bad = {k: v for k, v in good.items() if k != "ts_ms"} | {"extra": 1}
    for topic, key, raw in (
        ("tier-changes", b"Z", orjson.dumps(bad)),
        ("tier-changes", b"Y", orjson.dumps({k: v for k, v in good.items() if k != "ts_ms"})),
        ("offers", b"A", b"{not json"),
    ):
        rec = read_output(topic, key, raw)
        assert isinstance(rec, DecodeError)
        inp.add_malformed(topic, "[0]@9", rec.field, rec.reason)
    kpis = compute(inp)
    assert kpis.customers == 7  # Z's record was left out, not guessed at
    assert dict(inp.malformed) == {
        ("tier-changes", "$.extra"): 1,
        ("tier-changes", "key"): 1,
        ("offers", "$"): 1,
    }
    assert inp.examples[0].startswith("tier-changes [0]@9: $.extra: ")
    write_kpis(kpis, inp, tmp_path, Source("b", {}, RULES.timezone))
    md = (tmp_path / "report.md").read_text()
    assert "## Malformed records (left out, never guessed)" in md
    assert "| tier-changes | key | 1 |" in md
    assert (tmp_path / "migration.csv").read_text() == EXPECTED_MIGRATION


def test_an_empty_period_writes_the_same_shapes(tmp_path: Path) -> None:
    kpis = compute(KpiInput(MARCH))
    write_kpis(kpis, KpiInput(MARCH), tmp_path, Source("b", {}, RULES.timezone))
    lines = (tmp_path / "migration.csv").read_text().splitlines()
    assert len(lines) == 21 and all(line.endswith(",0") for line in lines[1:])
    assert (tmp_path / "conversion.csv").read_text() == EXPECTED_CONVERSION.splitlines()[0] + "\n"
    assert (tmp_path / "retention.csv").read_text().splitlines()[1] == "mass,0,0,0,"


def test_the_period_is_local_days_in_the_rules_zone() -> None:
    p = Period.of(date(2026, 3, 1), date(2026, 3, 1), RULES)
    assert p.end_ms - p.start_ms == 86_400_000
    assert p.start_ms == 1772294400000  # 2026-03-01T00:00+08:00 = 2026-02-28T16:00Z
    with pytest.raises(ValueError, match="ends"):
        Period.of(date(2026, 3, 2), date(2026, 3, 1), RULES)
