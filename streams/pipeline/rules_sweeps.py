"""Waking every customer at a new switch of rules version (the worker's side of
state/timeline.py).

A version that takes effect is a time trigger due for every customer at its
``effective_from``. Customers indexed from now on get it from ``next_due_ms`` (the
timeline knows the switch); those already in the due index were indexed without it.
So a new timeline records its unknown switches for every partition with entries, and
the partition's next tick makes each of its customers due at them (a scan of keys, no
state read) before it pops what is due. A sweep recorded before a partition's build
stays after it: customers indexed by events before the build kept the due time they
had then.
"""

from __future__ import annotations

from collections.abc import Iterable

from state.rules import Rules
from state.timeline import RulesTimeline
from streams.pipeline.due_index import DueIndex


def version_at(rules: Rules | RulesTimeline, ts: int) -> Rules:
    """The rules in force at event time ``ts``."""
    return rules if isinstance(rules, Rules) else rules.at(ts)


def base_rules(rules: Rules | RulesTimeline) -> Rules:
    """The rules in force from the beginning of time."""
    return rules if isinstance(rules, Rules) else rules.base


class RulesSweeps:
    """partition -> switch times every customer of it must be made due at."""

    def __init__(self) -> None:
        self._pending: dict[int, set[int]] = {}

    def note(
        self, old: Rules | RulesTimeline, new: RulesTimeline, partitions: Iterable[int]
    ) -> list[int]:
        """Record the switches of ``new`` that ``old`` did not have, for ``partitions``
        (those with entries in the due index). Returns them."""
        known = {v.effective_from for v in old.versions} if isinstance(old, RulesTimeline) else ()
        switches = sorted(v.effective_from for v in new.versions if v.effective_from not in known)
        if switches:
            for p in partitions:
                self._pending.setdefault(p, set()).update(switches)
        return switches

    def wake(self, due: DueIndex, partition: int, keys: Iterable[bytes]) -> None:
        """Make every customer in ``keys`` due at each switch pending for the partition."""
        pending = self._pending.pop(partition, None)
        if pending:
            keys = list(keys)
            for switch_at in pending:
                due.schedule(partition, keys, switch_at)

    def pending(self, partition: int) -> bool:
        return partition in self._pending
