"""The pipeline's records: what goes into a batch, what a batch holds while it runs, and
what comes out (streams/pipeline/processor.py applies them).

Plain data, kept apart from the processor so that the shell, the tools and the tests
name them without the processing code, and the processor stays one job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from schemas.decoder import DecodeError
from schemas.events import ErasureRequest, InputEvent, Tick
from state.customer import CustomerState
from state.decisions import Decision


class RawMessage(NamedTuple):
    """A consumed Kafka message, reduced to what processing needs."""

    topic: str  # contract name, without the deployment's topic prefix
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0  # the Kafka record timestamp (dead letters carry it)
    source_topic: str = ""  # the full topic name, prefix included ("" = same as topic)


class OutputRecord(NamedTuple):
    topic: str  # contract name (tier-changes, offers, alerts, dead-letters, audit)
    key: bytes | None
    value: bytes
    source_partition: int = 0  # input partition of the cause (its transaction, under EOS)


class InternalFailure(NamedTuple):
    """A record dead-lettered because processing it raised an unexpected exception (a
    bug, not bad input). The shell logs each once, with these coordinates."""

    topic: str  # full source topic name
    partition: int
    offset: int
    #: where it raised: decode | apply | fire_timers | state (to_bytes/profile_fields at
    #: the batch's end)
    stage: str
    error: Exception


@dataclass
class BatchResult:
    #: (partition, key, serialized state) for every customer this batch changed.
    states: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    #: Tier changes, offers and alerts in decision order, then dead letters.
    outputs: list[OutputRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    #: customer key -> Redis profile fields, one per changed customer (latest wins).
    profiles: dict[bytes, dict[str, str]] = field(default_factory=dict)
    #: (topic, result) -> count; result is applied | duplicate | late | unmatched (an
    #: offer response not attributed: state/responses.py) | dead_letter.
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (topic, reason class) -> count of dead letters.
    dead_letters: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Event times (ms) of applied events that produced decisions, for latency.
    decision_event_ts: list[int] = field(default_factory=list)
    #: Partitions whose tick left customers due (the tick budget): tick them again soon.
    due_backlog: set[int] = field(default_factory=set)
    #: (offer kind, the offer's tier, outcome) -> attributed offer responses.
    offer_responses: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: Records dead-lettered with reason class ``internal``, in order.
    internal: list[InternalFailure] = field(default_factory=list)
    #: Erased customers whose state must leave the changelog and the store: (partition,
    #: key) for a tombstone -- erased and not created again later in the batch.
    tombstones: list[tuple[int, bytes]] = field(default_factory=list)
    #: Customers whose Redis profile is deleted *before* ``profiles`` are written: every
    #: erasure of the batch (a customer created again after it gets a fresh profile).
    erased_profiles: list[bytes] = field(default_factory=list)
    #: Erasures by result: erased (something was held) | not_found.
    erasures: dict[str, int] = field(default_factory=dict)

    def count(self, topic: str, result: str) -> None:
        """One more record of ``topic`` with ``result`` in ``counts``."""
        self.counts[(topic, result)] = self.counts.get((topic, result), 0) + 1

    def count_answer(self, answered: tuple[str, str, str]) -> None:
        """One more attributed offer response (kind, the offer's tier, outcome)."""
        self.offer_responses[answered] = self.offer_responses.get(answered, 0) + 1


class Decoded(NamedTuple):
    """A message after decoding: exactly one of ``event`` and ``error`` is set.

    ``error`` is the decoder's rejection, or the exception decoding raised (a bug)."""

    msg: RawMessage
    event: InputEvent | ErasureRequest | Tick | None
    error: DecodeError | Exception | None

    @property
    def ts(self) -> int:
        """Event time for ordering; bad records sort first (they touch no state)."""
        return self.event.ts if self.event is not None else -1


StateLoader = Callable[[int, bytes], bytes | None]
StateScan = Callable[[int], Iterable[tuple[bytes, bytes]]]


class BatchState:
    """What one ``BatchProcessor.apply_ordered`` call holds while it runs. The per-event
    loop keeps its own local names for these; ticks and the failure paths reach them
    here."""

    __slots__ = (
        "applied",
        "audit",
        "dead",
        "dead_ticks",
        "dirty",
        "load",
        "poisoned",
        "result",
        "scan",
        "states",
    )

    def __init__(self, load: StateLoader, scan: StateScan | None) -> None:
        self.load = load
        self.scan = scan
        self.result = BatchResult()
        self.dead: list[OutputRecord] = []
        #: audit records of erasures: they join the outputs at the end, like dead letters,
        #: so that ``outputs`` up to them stays parallel to ``decisions`` (``_withdraw``)
        self.audit: list[OutputRecord] = []
        #: customer key -> (partition, state as this batch left it so far)
        self.states: dict[bytes, tuple[int, CustomerState]] = {}
        #: customers whose state this batch changed (written at its end)
        self.dirty: set[bytes] = set()
        #: (customer key, record, status) of every application of this batch, in order
        #: (erasures included, status ``erased``): what a customer's state is rebuilt
        #: from after one of its records failed
        self.applied: list[tuple[bytes, Decoded, str]] = []
        #: customers one of whose records failed: kept out of the state cache
        self.poisoned: set[bytes] = set()
        #: (partition, offset) of ticks already dead-lettered in this batch
        self.dead_ticks: set[tuple[int, int]] = set()
