"""Every kind of decision the rules can make, from the core's own declarations.

Shared by the demo's tests (tests/streams/tools/test_demo_bank.py through the core,
tests/integration/test_demo.py through the real demo): a kind added to the core later
makes them fail until the demo shows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from state.decisions import DIRECTIONS
from state.rules import ALERT_KINDS, OFFER_KINDS, Rules
from state.triggers import TRIGGER_KINDS


def every_kind(rules: Rules) -> dict[str, set[str]]:
    """Group -> the kinds the demo must show. ``campaign`` in OFFER_KINDS is the cap
    of campaign offers, not a kind: each campaign's own ``kind`` stands for it."""
    offers = {k for k in OFFER_KINDS if k != "campaign"} | {c.kind for c in rules.campaigns}
    return {
        "tier_directions": set(DIRECTIONS),
        "offers": offers,
        "alerts": set(ALERT_KINDS),
        "triggers": set(TRIGGER_KINDS),
    }


def kinds_of(records: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, set[str]]:
    """What output records (contract topic, JSON) show, grouped as ``every_kind``."""
    seen: dict[str, set[str]] = {g: set() for g in ("tier_directions", "offers", "alerts")}
    seen["triggers"] = set()
    for topic, rec in records:
        if topic == "tier-changes":
            seen["tier_directions"].add(rec["direction"])
        elif topic in ("offers", "alerts"):
            seen[topic].add(rec["kind"])
        else:
            continue
        # a timer's decision names it (an override's expiry: on the tier change)
        trigger = rec.get("reason", {}).get("trigger", "")
        if ":" in trigger and trigger.split(":", 1)[0] in TRIGGER_KINDS:
            seen["triggers"].add(trigger.split(":", 1)[0])
    return seen


def missing(expected: dict[str, set[str]], seen: dict[str, set[str]]) -> dict[str, set[str]]:
    return {
        g: kinds - seen.get(g, set()) for g, kinds in expected.items() if kinds - seen.get(g, set())
    }
