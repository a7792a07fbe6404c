"""The core against the independent reference (tests/reference/rules_ref.py): tier
changes, the offers that tier entries and transactions cause, the large-outflow and
AUM-drop alerts and each customer's contribution must be the same, on randomized banks
of a few hundred customers over months of event time (under the default rules and with
the average-daily basis) and on small hypothesis-built histories around every
threshold; and with answers to those offers mixed in, the attributed responses and the
offers a decline holds back."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.decoder import DecodeError, Decoder
from state.core import CoreError, apply, fire_timers
from state.customer import CustomerState
from state.profile import profile_fields
from state.rules import Rules, load_rules
from tests.reference import rules_ref
from tests.reference.bank import DAY_MS, T0_MS, bank, ts_text

DECODER = Decoder()


def core_run(
    events: Iterable[tuple[str, Mapping[str, Any]]], rules: Rules, as_of: int | None = None
) -> rules_ref.ReferenceResult:
    """The events through the real decoder and core, in the given order, then (with
    ``as_of``) one final tick for everyone, and the decisions as the records that go on
    the output topics."""
    return _core(events, rules, as_of)[0]


def _core(
    events: Iterable[tuple[str, Mapping[str, Any]]], rules: Rules, as_of: int | None = None
) -> tuple[rules_ref.ReferenceResult, list[tuple[str, dict[str, Any]]]]:
    states: dict[str, CustomerState | None] = {}
    records: list[tuple[str, dict[str, Any]]] = []
    rejected: list[str] = []
    answered: Counter[tuple[str, str, str]] = Counter()
    for topic, doc in events:
        event = DECODER.decode(topic, orjson.dumps(doc))
        assert not isinstance(event, DecodeError), (event, doc)
        try:
            outcome = apply(states.get(event.customer_id), event, rules)
        except CoreError:
            rejected.append(event.event_id)
            continue
        states[event.customer_id] = outcome.state
        records.extend((d.topic, d.to_record()) for d in outcome.decisions)
        if outcome.answered is not None:
            answered[outcome.answered] += 1
    if as_of is not None:
        for st in states.values():
            assert st is not None
            records.extend(
                (d.topic, d.to_record()) for d in fire_timers(st, as_of, "end", rules).decisions
            )
    result = rules_ref.result_from_records(records)
    result.rejected = rejected
    result.responses = answered
    result.contributions = {
        cid: profile_fields(st, rules)["contribution_cny"]
        for cid, st in states.items()
        if st is not None
    }
    return result, records


def _rules_file(tmp_path: Path, text: str) -> Path | None:
    if not text:
        return None
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


def _compare(
    events: list[tuple[str, dict[str, Any]]], path: Path | None, as_of: int | None = None
) -> tuple[Any, Any]:
    core = core_run(events, load_rules(str(path) if path else None), as_of)
    ref = rules_ref.run(events, path, as_of)
    return core, ref


BASES = {"current": "", "avg_daily": '[tiers]\nbasis = "avg_daily"\navg_days = 10\n'}


@pytest.mark.parametrize(("basis", "seed"), [("current", 1), ("avg_daily", 2)])
def test_randomized_bank_agrees_with_the_reference(tmp_path: Path, seed: int, basis: str) -> None:
    events = bank(seed, customers=300, days=150)
    core, ref = _compare(events, _rules_file(tmp_path, BASES[basis]))
    problems = rules_ref.diff(ref, core)
    assert not problems, "\n".join(problems)
    assert core.rejected == ref.rejected
    assert core.contributions == ref.contributions
    earning = [v for v in ref.contributions.values() if v != "0.00"]
    assert len(earning) > len(ref.contributions) * 0.9
    # the bank must reach what it is meant to test, or agreement proves little
    changes = [c for cs in ref.tier_changes.values() for c in cs]
    directions = {c.direction for c in changes}
    assert directions == {"initial", "upgrade", "downgrade"}
    assert {c.to_tier for c in changes} == set(rules_ref.TIERS)
    assert {o.kind for o in ref.offers} == set(rules_ref.OFFER_KINDS)
    assert {(a.kind, a.severity) for a in ref.alerts} >= {
        ("large_outflow", "warning"), ("large_outflow", "critical"),
        ("aum_drop", "warning"), ("aum_drop", "critical"),
    }  # fmt: skip
    assert ref.rejected  # unknown currencies
    situations = ("duplicate", "out_of_order", "tie", "older_balance", "late", "late_balance")
    assert all(ref.counts[s] > 0 for s in situations), ref.counts
    print(f"\nseed {seed} {basis}: {len(events)} events, {len(changes)} tier changes, "
          f"{len(ref.offers)} offers, {len(ref.alerts)} alerts, {dict(ref.counts)}")  # fmt: skip


#: Downgrade policies (docs/rules.md, "Tier policies and time"), alone and together.
POLICIES = {
    "min_days": "[tiers]\nmin_days_in_tier = 20\n",
    "grace": "[tiers]\ndowngrade_grace_days = 12\n",
    "review_avg": '[tiers]\nreview = "month"\nbasis = "avg_daily"\navg_days = 10\n',
    "all_avg": (
        '[tiers]\nbasis = "avg_daily"\navg_days = 7\nmin_days_in_tier = 9\n'
        'downgrade_grace_days = 4\nreview = "quarter"\n'
    ),
}


@pytest.mark.parametrize(("policy", "seed"), [(p, 10 + i) for i, p in enumerate(POLICIES)])
def test_randomized_bank_agrees_under_the_downgrade_policies(
    tmp_path: Path, policy: str, seed: int
) -> None:
    """The knobs, on a smaller bank (the reference evaluates every midnight), with a
    final tick 100 days after the last event: held downgrades are released by time."""
    events = bank(seed, customers=100, days=150)
    as_of = T0_MS + 250 * DAY_MS
    core, ref = _compare(events, _rules_file(tmp_path, POLICIES[policy]), as_of)
    problems = rules_ref.diff(ref, core)
    assert not problems, "\n".join(problems)
    changes = [c for cs in ref.tier_changes.values() for c in cs]
    by_time = [c for c in changes if c.cause_event_id.startswith("tier:")]
    assert {c.direction for c in by_time} >= {"downgrade"}, policy  # a held one released
    assert {c.direction for c in changes if c not in by_time} >= {"initial", "upgrade"}
    print(f"\n{policy}: {len(changes)} tier changes, {len(by_time)} by time alone")


# ------------------------------------------------------------------ around the lines

_EDGE_AMOUNTS = [
    "0.00", "0.01", "449999.99", "450000.00", "450000.01", "499999.99", "500000.00",
    "899999.99", "900000.00", "999999.99", "1000000.00", "5399999.99", "5400000.00",
    "6000000.00", "250000.00", "700000.00", "3000000.00",
]  # fmt: skip


_ACCOUNTS = st.sampled_from(["a", "b", "l"])
_PRODUCTS = st.sampled_from(["deposit", "deposit", "fund", "loan"])
_DEBITS = st.sampled_from(["withdrawal", "deposit", "fee", "loan_repayment"])
_AMOUNTS = st.sampled_from(["0.01", "100.00", "250000.00", "500000.00", "700000.00"])
_CHANNELS = st.sampled_from(["branch", "atm", "mobile"])


@st.composite
def histories(draw: Any) -> list[tuple[str, dict[str, Any]]]:
    """One or two customers: balances of two accounts and a loan at the tier lines,
    debits of every kind, equal times, events out of order, redeliveries, consent."""
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(draw(st.integers(1, 30))):
        cid = draw(st.sampled_from(["H1", "H1", "H2"]))
        ts = T0_MS + draw(st.integers(0, 40)) * DAY_MS // 4 + draw(st.sampled_from([0, 0, 1]))
        doc: dict[str, Any] = {
            "event_id": f"{cid}-{i}",
            "customer_id": cid,
            "ts": ts_text(ts, _RND),
        }
        kind = draw(st.sampled_from(["bal", "bal", "bal", "tx", "tx", "prof", "dup"]))
        if kind == "dup" and out:
            out.append(draw(st.sampled_from(out)))
        elif kind in ("bal", "dup"):
            doc |= {"account_id": draw(_ACCOUNTS), "product": draw(_PRODUCTS),
                    "balance": draw(st.sampled_from(_EDGE_AMOUNTS)), "currency": "CNY"}  # fmt: skip
            out.append(("balances", doc))
        elif kind == "tx":
            doc |= {"account_id": draw(_ACCOUNTS), "type": draw(_DEBITS),
                    "amount": draw(_AMOUNTS), "currency": "CNY",
                    "channel": draw(_CHANNELS)}  # fmt: skip
            if draw(st.booleans()):
                doc["balance_after"] = draw(st.sampled_from([*_EDGE_AMOUNTS, "-100.00"]))
            out.append(("transactions", doc))
        else:
            doc |= {"segment": draw(st.sampled_from(["sme", "retail"])),
                    "marketing_consent": draw(st.booleans()),
                    "birth_date": "2001-05-05"}  # fmt: skip
            out.append(("customer-profiles", doc))
    return out


class _Rnd:
    """ts_text's choice of offset, fixed: hypothesis draws the times themselves."""

    def choice(self, seq: list[Any]) -> Any:
        return seq[0]

    def random(self) -> float:
        return 0.0


_RND: Any = _Rnd()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.sampled_from(list(BASES)))
def test_histories_around_the_lines_agree(
    tmp_path_factory: pytest.TempPathFactory, events: list[tuple[str, dict[str, Any]]], basis: str
) -> None:
    path = _rules_file(tmp_path_factory.mktemp("r"), BASES[basis])
    core, ref = _compare(events, path)
    problems = rules_ref.diff(ref, core)
    assert not problems, "\n".join(problems)
    assert core.contributions == ref.contributions


_SHORT_POLICIES = {
    "min_days": "[tiers]\nmin_days_in_tier = 2\n",
    "grace": "[tiers]\ndowngrade_grace_days = 1\n",
    "grace_avg": '[tiers]\nbasis = "avg_daily"\navg_days = 3\ndowngrade_grace_days = 2\n',
    "review": '[tiers]\nreview = "month"\n',
    "all_avg": (
        '[tiers]\nbasis = "avg_daily"\navg_days = 4\nmin_days_in_tier = 1\n'
        'downgrade_grace_days = 1\nreview = "month"\n'
    ),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.sampled_from(list(_SHORT_POLICIES)), st.integers(0, 40))
def test_histories_under_the_downgrade_policies_agree(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[str, dict[str, Any]]],
    policy: str,
    extra_days: int,
) -> None:
    """Histories of ten days around the lines, under each policy with short periods,
    and a final tick up to 40 days later (past the month's review)."""
    path = _rules_file(tmp_path_factory.mktemp("r"), _SHORT_POLICIES[policy])
    core, ref = _compare(events, path, T0_MS + (10 + extra_days) * DAY_MS + 1)
    problems = rules_ref.diff(ref, core)
    assert not problems, "\n".join(problems)


def test_the_reference_imports_nothing_of_the_project() -> None:
    """Independence: stdlib only (it may read the rules file and nothing else)."""
    source = Path(rules_ref.__file__).read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports and not [
        x for x in imports if any(p in x for p in ("state", "streams", "schemas", "tests"))
    ]


# ------------------------------------------------------------------ offer responses


def _answers(
    events: list[tuple[str, dict[str, Any]]],
    offers: list[dict[str, Any]],
    seed: int,
) -> list[tuple[str, dict[str, Any]]]:
    """``events`` with answers to ``offers`` (records a first run emitted) mixed in at
    their event time: mostly declines (so the cool-down meets later offers), some
    stamped before their offer, second answers to one offer, redeliveries, and answers
    naming no offer, another customer's offer, or a customer who does not exist."""
    rnd = random.Random(seed)
    out: list[tuple[int, dict[str, Any]]] = []

    def answer(cid: str, offer_id: str, ts: int) -> dict[str, Any]:
        outcome = rnd.choices(["declined", "accepted", "ignored"], [5, 3, 2])[0]
        doc = {"event_id": f"resp-{len(out)}", "customer_id": cid, "ts": ts_text(ts, rnd),
               "offer_event_id": offer_id, "outcome": outcome}  # fmt: skip
        if rnd.random() < 0.3:
            doc["channel"] = rnd.choice(["mobile", "branch", "call_center"])
        out.append((ts, doc))
        return doc

    for offer in offers:
        ts = rules_ref.parse_ts(offer["ts"])
        for _ in range(rnd.choices([0, 1, 2], [2, 7, 1])[0]):
            late = rnd.random() < 0.1  # before its offer: unmatched
            when = ts - rnd.randint(1, DAY_MS) if late else ts + rnd.randint(0, 20 * DAY_MS)
            doc = answer(offer["customer_id"], offer["event_id"], when)
            if rnd.random() < 0.05:  # redelivered a little later
                out.append((when + rnd.randint(0, DAY_MS), doc))
    customers = sorted({o["customer_id"] for o in offers})
    for i in range(60):
        offer = rnd.choice(offers)
        when = rules_ref.parse_ts(offer["ts"]) + rnd.randint(0, 10 * DAY_MS)
        if i % 3 == 0:  # names no offer
            answer(rnd.choice(customers), f"{rnd.getrandbits(128):032x}", when)
        elif i % 3 == 1:  # another customer's offer
            other = rnd.choice([c for c in customers if c != offer["customer_id"]])
            answer(other, offer["event_id"], when)
        else:  # no such customer
            answer(f"ghost-{i}", offer["event_id"], when)
    # each after the last of its customer's events (in the bank's own order, which has
    # its own disorder) stamped at or before it; a ghost's anywhere
    where: dict[str, list[tuple[int, int]]] = {}
    for i, (_topic, doc) in enumerate(events):
        where.setdefault(doc["customer_id"], []).append((i, rules_ref.parse_ts(doc["ts"])))
    placed = []
    for ts, doc in out:
        mine = where.get(doc["customer_id"], [])
        before = [i for i, t in mine if t <= ts]
        at = max(before) + 1 if before else mine[0][0] if mine else rnd.randrange(len(events))
        placed.append((at, doc))
    merged = list(events)
    for at, doc in sorted(placed, key=lambda x: -x[0]):  # from the end: indices stay valid
        merged.insert(at, ("offer-responses", doc))
    return merged


@pytest.mark.parametrize(
    ("basis", "seed"),
    [("current", 3), ("avg_daily", 4), ("all_avg", 5)],  # all_avg: issue 21's policies too
)
def test_offer_responses_agree_with_the_reference(tmp_path: Path, seed: int, basis: str) -> None:
    """Answers to the offers, also (under the tier policies) to tier-entry offers that
    time alone caused, whose ids derive from their trigger (``tier:<instant>``)."""
    path = _rules_file(tmp_path, {**BASES, **POLICIES}[basis])
    rules = load_rules(str(path) if path else None)
    events = bank(seed, customers=300, days=150)
    _, first = _core(events, rules)
    decided = [r for t, r in first if t == "offers" and r["kind"] in rules_ref.OFFER_KINDS]
    events = _answers(events, decided, seed)

    core, records = _core(events, rules)
    ref = rules_ref.run(events, path, rules_version=rules.version)
    problems = rules_ref.diff(ref, core)
    assert not problems, "\n".join(problems)
    assert core.responses == ref.responses
    # the reference sees only its kinds of offers: no customer may have had enough
    # offers of any kind for the core to forget one a response names (eviction is
    # checked against its own model in tests/state/test_responses.py)
    per_customer = Counter(r["customer_id"] for t, r in records if t == "offers")
    assert max(per_customer.values()) < rules.answerable_offers
    # the data must reach what it is meant to test
    assert {o for _k, _t, o in ref.responses} == {"accepted", "declined", "ignored"}
    assert len({k for k, _t, _o in ref.responses}) >= 3
    for situation in ("declined_hold", "response_before_offer", "response_unknown",
                      "response_no_customer", "duplicate"):  # fmt: skip
        assert ref.counts[situation] > 0, (situation, ref.counts)
    if basis in POLICIES:  # answers to offers of evaluations between events among them
        timed = {r["event_id"] for t, r in first if t == "offers" and
                 r["cause_event_id"].startswith("tier:")}  # fmt: skip
        assert timed and any(d["offer_event_id"] in timed for t, d in events
                             if t == "offer-responses"), "no timed offer answered"  # fmt: skip
    held = ref.counts["declined_hold"]
    print(f"\nseed {seed} {basis}: {sum(ref.responses.values())} attributed responses, "
          f"{held} offers held back by a decline, {dict(ref.counts)}")  # fmt: skip
