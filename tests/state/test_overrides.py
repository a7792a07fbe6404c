"""Relationship managers' tier overrides (issue 22): the effective tier until it expires
or is cleared, the rules underneath, the expiry as a time trigger, every one audited."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.decoder import validate_output
from schemas.events import TierOverride
from schemas.timefmt import format_ts_utc
from state.core import CoreError, apply, fire_timers
from state.customer import CustomerState
from state.decisions import AuditRecord, Decision, Offer, TierChange
from state.profile import profile_fields
from state.tier_policy import tier_due
from state.timeline import RulesTimeline
from state.triggers import next_due_ms
from tests.state.helpers import RULES, at, bal, prof, run
from tests.state.test_triggers import _rules


def override(
    ts: int, tier: str | None, until: int | None = None, eid: str = "o1", by: str = "rm-7"
) -> TierOverride:
    return TierOverride(eid, "c1", ts, tier, until, by, "assets at another branch")


def changes(decisions: Any) -> list[tuple[str | None, str, str, str]]:
    return [
        (d.from_tier, d.to_tier, d.direction, d.cause_event_id)
        for d in decisions
        if isinstance(d, TierChange)
    ]


def audits(decisions: Any) -> list[tuple[str, str, str]]:
    return [(d.action, d.result, d.principal) for d in decisions if isinstance(d, AuditRecord)]


def check_records(decisions: tuple[Decision, ...]) -> None:
    for d in decisions:
        validate_output(d.topic, d.to_record())


def _mass() -> CustomerState:
    s, _ = run([prof(at(0)), bal(at(0), "100000")])
    assert s.tier == "mass"
    return s


def test_an_override_is_the_effective_tier_and_says_so() -> None:
    s = _mass()
    out = apply(s, override(at(1), "hnw", at(31)), RULES).decisions
    check_records(out)
    assert changes(out) == [("mass", "hnw", "override", "o1")]
    assert audits(out) == [("tier.override.set", "ok", "rm-7")]
    assert not [d for d in out if isinstance(d, Offer)]  # a person decided: no offers
    tc = next(d for d in out if isinstance(d, TierChange))
    assert tc.reason["set_by"] == "rm-7" and tc.reason["rules_tier"] == "mass"
    assert tc.reason["until"] == format_ts_utc(at(31))
    audit = next(d for d in out if isinstance(d, AuditRecord)).to_record()
    assert audit["role"] is None and audit["reason"]["tier_after"] == "hnw"
    fields = profile_fields(s, RULES)
    assert fields["tier"] == "hnw"
    assert fields["tier_override_until"] == format_ts_utc(at(31))
    assert fields["tier_override_by"] == "rm-7"
    assert s == CustomerState.from_bytes(s.to_bytes())


def test_the_rules_go_on_underneath_and_decide_at_the_expiry() -> None:
    s = _mass()
    apply(s, override(at(1), "hnw", at(31)), RULES)
    out = apply(s, bal(at(5), "700000"), RULES).decisions  # affluent by the rules
    assert changes(out) == [] and s.tier == "hnw" and s.rules_tier == "affluent"
    due = next_due_ms(s, RULES)
    assert due is not None and due <= at(31)  # the expiry, or the hnw review before it
    fired = fire_timers(s, at(40), "tick-0-x", RULES)
    check_records(fired.decisions)
    trigger = f"override_expiry:{at(31)}"
    assert changes(fired.decisions) == [("hnw", "affluent", "downgrade", trigger)]
    tc = next(d for d in fired.decisions if isinstance(d, TierChange))
    assert tc.ts == at(31) and tc.reason["override_ended"] == "expired"
    assert tc.reason["trigger"] == trigger
    assert audits(fired.decisions) == [("tier.override.expire", "ok", "rm-7")]
    assert s.override_tier is None and s.rules_tier is None and s.tier == "affluent"
    assert profile_fields(s, RULES)["tier_override_by"] == ""
    # no high-value-downgrade alert, no tier offers: the end of an override is no news
    # (only the hnw review due at local midnight of day 31, before it expired)
    others = [d for d in fired.decisions if not isinstance(d, TierChange | AuditRecord)]
    assert [(d.kind, d.ts < at(31)) for d in others] == [("relationship_review", True)]


def test_the_expiry_fires_the_same_from_a_tick_or_from_the_next_event() -> None:
    by_tick = _mass()
    apply(by_tick, override(at(1), "private", at(10, 3)), RULES)
    by_event = CustomerState.from_bytes(by_tick.to_bytes())
    a = fire_timers(by_tick, at(11), "tick-1-x", RULES).decisions
    b = apply(by_event, bal(at(12), "100000", account="acc2"), RULES).decisions
    assert [d.to_record() for d in a] == [d.to_record() for d in b[: len(a)]]
    assert changes(a) == [("private", "mass", "downgrade", f"override_expiry:{at(10, 3)}")]


def test_clearing_hands_the_tier_back_to_the_rules() -> None:
    s = _mass()
    apply(s, override(at(1), "private"), RULES)  # no until: until cleared
    assert next_due_ms(s, RULES) != at(1) and s.override_until == -1
    assert profile_fields(s, RULES)["tier_override_until"] == ""
    out = apply(s, override(at(3), None, eid="o2", by="rm-9"), RULES).decisions
    check_records(out)
    assert changes(out) == [("private", "mass", "downgrade", "o2")]
    assert audits(out) == [("tier.override.clear", "ok", "rm-9")]
    out = apply(s, override(at(4), None, eid="o3"), RULES).decisions  # nothing to clear
    assert changes(out) == [] and audits(out) == [("tier.override.clear", "ok", "rm-7")]


def test_last_writer_wins_an_older_record_is_superseded() -> None:
    s = _mass()
    apply(s, override(at(5), "affluent", eid="new"), RULES)
    out = apply(s, override(at(4), None, eid="old"), RULES).decisions
    assert changes(out) == [] and audits(out) == [("tier.override.clear", "superseded", "rm-7")]
    assert s.tier == "affluent" and s.override_tier == "affluent"


def test_an_override_that_expired_before_it_arrived_applies_and_ends_at_once() -> None:
    s = _mass()
    apply(s, bal(at(20), "100000"), RULES)  # the customer's time is day 20
    out = apply(s, override(at(2), "hnw", at(10)), RULES).decisions
    check_records(out)
    assert changes(out) == [
        ("mass", "hnw", "override", "o1"),
        ("hnw", "mass", "downgrade", f"override_expiry:{at(10)}"),
    ]
    assert audits(out) == [
        ("tier.override.set", "expired", "rm-7"),
        ("tier.override.expire", "ok", "rm-7"),
    ]
    assert s.override_tier is None and s.tier == "mass"


def test_a_replaced_override_does_not_expire_on_its_old_date() -> None:
    s = _mass()
    apply(s, override(at(1), "hnw", at(10)), RULES)
    out = apply(s, override(at(2), "hnw", at(30), eid="o2"), RULES).decisions
    assert changes(out) == []  # same tier: only the audit and the new expiry
    assert audits(out) == [("tier.override.set", "ok", "rm-7")]
    assert next_due_ms(s, RULES) == at(30)
    assert changes(fire_timers(s, at(20), "tick", RULES).decisions) == []
    assert changes(fire_timers(s, at(31), "tick2", RULES).decisions) == [
        ("hnw", "mass", "downgrade", f"override_expiry:{at(30)}")
    ]


def test_an_override_for_a_customer_the_rules_never_tiered() -> None:
    s, outs = run([override(at(1), "affluent", at(5))])
    check_records(outs[0].decisions)
    assert changes(outs[0].decisions) == [(None, "affluent", "override", "o1")]
    out = fire_timers(s, at(6), "tick", RULES).decisions
    # no AUM seen: the rules' tier is the one a basis of 0 reaches
    assert changes(out) == [("affluent", "mass", "downgrade", f"override_expiry:{at(5)}")]


def test_while_overridden_the_effective_tier_drives_care() -> None:
    s = _mass()
    apply(s, override(at(1), "hnw", at(100)), RULES)
    # hnw: reviews every 30 days from the override (a service contact)
    out = fire_timers(s, at(32), "tick", RULES).decisions
    assert [d.kind for d in out if isinstance(d, Offer)] == ["relationship_review"]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (TierOverride("x", "c1", at(1), "gold", None, "rm", ""), "tier"),
        (TierOverride("x", "c1", at(1), "hnw", at(1), "rm", ""), "until"),
        (TierOverride("x", "c1", at(1), "hnw", None, "", ""), "set_by"),
        (TierOverride("x", "c1", at(1), "hnw", None, "r" * 65, ""), "set_by"),
        (TierOverride("x", "c1", at(1), "hnw", None, "rm", "x" * 65), "reason"),
    ],
)
def test_the_core_refuses_what_the_decoder_would(event: TierOverride, field: str) -> None:
    s = _mass()
    before = s.to_bytes()
    with pytest.raises(CoreError) as err:
        apply(s, event, RULES)
    assert err.value.field == field and s.to_bytes() == before


# ------------------------------------------------------------------ with issue 21


def test_a_rules_switch_under_an_override_moves_only_the_rules_tier() -> None:
    """Issue 21's timeline meets issue 22's override: at the switch the override holds
    the effective tier (no tier change), the rules' tier underneath is evaluated by the
    new version, and the override's end lands on that version's tier."""
    raised = _rules('version = "2027.01-raised"\n[tiers]\naffluent = "700000"\n')
    tl = RulesTimeline(RULES, [(at(20, 9), raised)])
    s, _ = run([prof(at(0)), bal(at(0), "600000")])
    assert s.tier == "affluent"
    apply(s, override(at(1), "hnw", at(40)), tl)
    fired = fire_timers(s, at(20, 12), "tick-0-x", tl)
    assert changes(fired.decisions) == [] and s.tier == "hnw"
    assert s.rules_tier == "mass"  # 600k: below the raised floor's band (630k)
    out = apply(s, override(at(25), None, eid="o2"), tl).decisions
    check_records(out)
    assert changes(out) == [("hnw", "mass", "downgrade", "o2")]
    tc = next(d for d in out if isinstance(d, TierChange))
    assert tc.rules_version == raised.version and tc.reason["override_ended"] == "cleared"


def test_tier_policies_hold_nothing_under_an_override_and_apply_after_it() -> None:
    """With a minimum stay the override still holds the tier; the rules' tier under it
    follows hysteresis; after its end the policies govern the tier again."""
    rules = _rules("[tiers]\nmin_days_in_tier = 30\n")
    s, _ = run([prof(at(0)), bal(at(0), "600000")], rules=rules)
    apply(s, override(at(1), "private", at(5)), rules)
    out = apply(s, bal(at(2), "100000"), rules).decisions
    assert changes(out) == [] and s.rules_tier == "mass" and s.below_since == -1
    assert tier_due(s, rules, s.timer_mark) is None  # time alone moves nothing under it
    fired = fire_timers(s, at(6), "tick-0-x", rules).decisions
    assert changes(fired) == [("private", "mass", "downgrade", f"override_expiry:{at(5)}")]
    out = apply(s, bal(at(7), "600000"), rules).decisions  # upgrades never wait
    assert [c[:3] for c in changes(out)] == [("mass", "affluent", "upgrade")]
    out = apply(s, bal(at(8), "100000"), rules).decisions  # a downgrade waits 30 days
    assert changes(out) == [] and s.tier == "affluent"
