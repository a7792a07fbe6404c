"""The rules over event time: which version decides an event, and when versions switch.

Why a timeline and not one ``Rules``: a bank changes its rules several times a year
(issue 21), and a decision must be the same whether it is made live, replayed next
month or backtested: so the version that decides an event is the one in force at the
event's *time*, never the one a worker happened to hold when the event arrived. The
shell builds the timeline from the start-up rules (in force from the beginning of
time) and the versions published on the ``rules`` topic, each with the event time it
takes effect (``effective_from``); the core asks it for the rules at a time.

A switch is also a time trigger (state/triggers.py): every customer is woken at the
``effective_from`` of each version, and when the version decides tiers differently
from the one before it (``Version.retier``), their tier is re-evaluated there, with
the decisions' cause ``rules:<version>`` (state/tier_policy.py).

Pure: the timeline is a value, built once per change of the history and shared.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from state.rules import Rules

__all__ = ["RulesTimeline", "Version"]


@dataclass(frozen=True, slots=True)
class Version:
    """One version in force from ``effective_from`` (epoch ms, event time) on."""

    effective_from: int
    rules: Rules
    #: its tier rules differ from the previous version's: customers are re-tiered
    retier: bool

    @property
    def trigger(self) -> str:
        """The switch's trigger id: the ``cause_event_id`` of what it decides."""
        return f"rules:{self.rules.version}"


class RulesTimeline:
    """The base rules, in force from the beginning of time, then each version from
    its ``effective_from`` on (strictly increasing; the shell resolves equal times).
    A published version takes effect once: going back to earlier rules is a new
    version (the shell refuses a version published twice)."""

    __slots__ = ("_rules", "_starts", "base", "versions")

    def __init__(self, base: Rules, versions: Iterable[tuple[int, Rules]] = ()) -> None:
        self.base = base
        out: list[Version] = []
        previous = base
        for effective_from, rules in versions:
            if out and effective_from <= out[-1].effective_from:
                raise ValueError(
                    "rules timeline: versions must take effect at strictly increasing times, "
                    f"got {effective_from} after {out[-1].effective_from}"
                )
            if any(v.rules.version == rules.version for v in out):
                # the switch's decisions derive their ids from rules:<version>: a version
                # taking effect twice would give two different decisions one id
                raise ValueError(f"rules timeline: version {rules.version!r} takes effect twice")
            out.append(Version(effective_from, rules, rules.tier_key != previous.tier_key))
            previous = rules
        self.versions: tuple[Version, ...] = tuple(out)
        self._starts = [v.effective_from for v in out]
        self._rules = [base, *(v.rules for v in out)]

    def at(self, ts: int) -> Rules:
        """The rules in force at event time ``ts``."""
        return self._rules[bisect_right(self._starts, ts)]

    @property
    def latest(self) -> Rules:
        """The version that takes effect last (in force from then on)."""
        return self._rules[-1]

    def switches(self, after: int, until: int) -> tuple[Version, ...]:
        """The versions taking effect in ``(after, until]``, in time order."""
        lo = bisect_right(self._starts, after)
        hi = bisect_right(self._starts, until)
        return self.versions[lo:hi]

    def next_switch(self, after: int) -> int | None:
        """The first ``effective_from`` strictly after ``after``, if any."""
        i = bisect_right(self._starts, after)
        return self._starts[i] if i < len(self._starts) else None

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        versions = ", ".join(f"{v.rules.version}@{v.effective_from}" for v in self.versions)
        return f"RulesTimeline(base={self.base.version}, versions=[{versions}])"
