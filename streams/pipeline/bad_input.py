"""The bad-share guard: stop rather than dead-letter a partition's whole input.

A few bad records go to dead letters and processing goes on; a partition whose recent
input is mostly bad means something upstream is broken (a wrong serializer, a wrong
topic), and shovelling everything into dead letters would only hide it. Like Sentry
Arroyo's dead-letter limit, the worker then stops (exit 3) and says which partition
and why. Pure bookkeeping: the pipeline feeds it one verdict per record.
"""

from __future__ import annotations

from collections import deque


class TooMuchBadInput(RuntimeError):
    """Raised when a partition's recent input is mostly bad: stop, don't shovel."""


class BadInputGuard:
    """Tracks the share of bad records over the last ``window`` records per partition.

    A few bad records go to dead letters; a partition whose recent input is mostly bad
    means something upstream is broken (wrong serializer, wrong topic), and dead-lettering
    everything would only hide it. The judgement needs a full window, so a short burst
    at start-up does not stop the worker. Every dead letter counts as bad: those of the
    decoder when they are decoded, those of the core and internal ones when they are
    applied (``record_late``).
    """

    def __init__(self, window: int = 1000, max_share: float = 0.5) -> None:
        self.window = window
        self.max_share = max_share
        self._seen: dict[tuple[str, int], deque[bool]] = {}
        self._bad: dict[tuple[str, int], int] = {}

    def record(self, topic: str, partition: int, bad: bool) -> None:
        tp = (topic, partition)
        seen = self._seen.get(tp)
        if seen is None:
            seen = self._seen[tp] = deque()
            self._bad[tp] = 0
        seen.append(bad)
        if bad:
            self._bad[tp] += 1
        if len(seen) > self.window and seen.popleft():
            self._bad[tp] -= 1
        if len(seen) >= self.window and self._bad[tp] > self.max_share * len(seen):
            self._stop(topic, partition)

    def record_late(self, topic: str, partition: int) -> None:
        """A record counted good when it was decoded turned out bad when it was applied
        (the core rejected it, or applying it raised): count it bad now. Its own entry
        may lie behind newer ones (decoding runs ahead of applying), so the newest good
        entry is turned: the share over the window is what is judged."""
        tp = (topic, partition)
        seen = self._seen.get(tp)
        if seen is None:
            self.record(topic, partition, True)
            return
        for i in range(len(seen) - 1, -1, -1):
            if not seen[i]:
                seen[i] = True
                self._bad[tp] += 1
                break
        if len(seen) >= self.window and self._bad[tp] > self.max_share * len(seen):
            self._stop(topic, partition)

    def _stop(self, topic: str, partition: int) -> None:
        tp = (topic, partition)
        raise TooMuchBadInput(
            f"{self._bad[tp]} of the last {len(self._seen[tp])} records on {topic}[{partition}] "
            f"were bad (limit {self.max_share:.0%}); stopping instead of dead-lettering "
            "everything — check the producers of this topic (see dead-letters for reasons)"
        )
