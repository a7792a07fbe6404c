"""``TRIGGER_KINDS`` is exactly what the time triggers fire: the demo's live view and its
test take the list from there, so it must not drift from state/triggers.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

from schemas.events import TierOverride
from state.core import fire_timers
from state.rules import Rules, load_rules
from state.triggers import TRIGGER_KINDS
from tests.state.helpers import DAY, T0, assess, at, bal, prof, run, tx


def _rules() -> Rules:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "rules.toml"
        p.write_text(
            '[[campaigns]]\nid = "c-2026"\nstart = 2026-03-01\nend = 2026-03-05\n'
            'kind = "spring_festival"\n'
        )
        return load_rules(str(p))


def test_a_quiet_hnw_year_fires_every_declared_trigger_kind_and_no_other() -> None:
    rules = _rules()
    # hnw with consent, a birthday, investments and an assessment from 300 days before
    # the year starts; a busy day, a relationship manager's override until day
    # 200, then a quiet year with daily ticks.
    override = TierOverride("o1", "c1", at(2), "private", at(200), "rm-1", "family office")
    state, _ = run(
        [
            prof(at(0), birth_date="1980-06-15"),
            assess(T0 - 300 * DAY, 70),
            bal(at(0), "2000000", account="inv", product="fund"),
            *(tx(at(1, h), "100") for h in range(8)),  # frequent: its recency slips later
            override,
        ],
        rules=rules,
    )
    fired: set[str] = set()
    for day in range(3, 366):
        for d in fire_timers(state, at(day, 0) + 1, f"tick-0-{day}", rules).decisions:
            trigger = d.reason.get("trigger", "")
            if ":" in trigger:
                fired.add(trigger.split(":", 1)[0])
    assert fired == set(TRIGGER_KINDS)
