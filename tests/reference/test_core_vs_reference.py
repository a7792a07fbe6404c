"""The core against the independent reference (tests/reference/rules_ref.py): tier
changes, the offers that tier entries and transactions cause, and the large-outflow
and AUM-drop alerts must be the same, on randomized banks of a few hundred customers
over months of event time (under the default rules and with the average-daily basis)
and on small hypothesis-built histories around every threshold."""

from __future__ import annotations

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
    states: dict[str, CustomerState | None] = {}
    records: list[tuple[str, dict[str, Any]]] = []
    rejected: list[str] = []
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
    if as_of is not None:
        for st in states.values():
            assert st is not None
            records.extend(
                (d.topic, d.to_record()) for d in fire_timers(st, as_of, "end", rules).decisions
            )
    result = rules_ref.result_from_records(records)
    result.rejected = rejected
    return result


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
