"""The batch loop's hold on faust's consumer (and aiokafka's, under it).

What is private here (re-check on a faust-streaming or aiokafka upgrade): the offsets
faust has read (``Consumer._read_offset``), the set of tracked, unacknowledged
messages (``Consumer._unacked_messages``), aiokafka's subscription state behind
faust's consumer thread (``_thread._ensure_consumer()._subscription``), and two
methods replaced on the consumer instance (``force_commit``, ``wait_empty``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.types import TP


def read_offset(consumer: Any, topic: str, partition: int) -> int | None:
    """The offset of the last message faust read from a partition (or the committed
    position it seeked to, before the first), None when unknown."""
    offset: int | None = consumer._read_offset.get(TP(topic, partition))
    return offset


def tracker(consumer: Any) -> Callable[[Any], None]:
    """``track(message)``: count a message as taken in and not yet acknowledged.

    faust's Stream inlines Consumer.track_message the same way (without its
    per-message sensor call): unacked messages hold back graceful shutdown.
    """
    track: Callable[[Any], None] = consumer._unacked_messages.add
    return track


def untrack(consumer: Any, messages: Iterable[Any]) -> None:
    """Forget tracked messages that will not be acknowledged here (their partition's
    next owner reads them again from the committed offset)."""
    unacked = consumer._unacked_messages
    for message in messages:
        unacked.discard(message)


def fetch_positions(app: faust.App, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The consumer's next fetch offset of each partition, where it has a valid one.

    Read from aiokafka's subscription state without going through the consumer
    thread (a call there waits behind the fetch in progress); reading an int that
    another thread writes is safe under the GIL, and a value a moment old only
    makes the caught-up test more cautious.
    """
    out: dict[tuple[str, int], int] = {}
    try:
        consumer = app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
        assignment = consumer._subscription.subscription.assignment
    except Exception:  # not started, or rebalancing: positions unknown
        return out
    for topic, partition in tps:
        try:
            state = assignment.state_value(TP(topic, partition))
        except Exception:
            continue
        if state is not None and state.has_valid_position:
            out[(topic, partition)] = int(state.position)
    return out


def serialize_commits(consumer: Any, lock: asyncio.Lock) -> None:
    """Make faust's offset commits wait for ``lock`` (held by a batch in flight).

    faust commits from its own timer task, which can run at any ``await`` of a
    batch's write. Under exactly_once that commits the partition's transaction
    with some of the batch's outputs already in it but without the batch's input
    offsets (they are acked only after the write): a kill right then makes the
    next owner redo those inputs, and read_committed consumers see the outputs
    twice — the kill test caught one duplicate alert that way. Taking the batch
    lock around faust's commit makes each commit see a batch either not started
    or fully written and acked. (Under at_least_once it costs nothing: the commit
    only covers acked offsets anyway.) Idempotent.
    """
    if getattr(consumer, "_tierstream_serialized", False):
        return
    force_commit = consumer.force_commit

    async def serialized_force_commit(*args: Any, **kwargs: Any) -> bool:
        async with lock:
            return bool(await force_commit(*args, **kwargs))

    consumer.force_commit = serialized_force_commit
    consumer._tierstream_serialized = True


def give_up_before_wait_empty(
    consumer: Any, lock: asyncio.Lock, give_up: Callable[[], None]
) -> None:
    """Make faust's ``wait_empty`` call ``give_up()`` (under ``lock``) before it waits.

    faust waits (``Consumer.wait_empty``) for every tracked, unacknowledged message
    before it revokes partitions and before it stops. The worker tracks a record
    when it takes it in, and the aligner may hold it for a while; once the fetch is
    stopped, a held record can wait for an input that will not move, and at
    shutdown nothing releases it any more: a SIGTERM under load hung until killed
    (the graceful-rebalance test caught it). So before faust waits, the batch in
    flight finishes (the lock), then ``give_up`` forgets and untracks every held
    record. Idempotent.
    """
    if getattr(consumer, "_tierstream_drain_first", False):
        return
    wait_empty = consumer.wait_empty

    async def wait_empty_without_held(*args: Any, **kwargs: Any) -> Any:
        async with lock:
            give_up()
        return await wait_empty(*args, **kwargs)

    consumer.wait_empty = wait_empty_without_held
    consumer._tierstream_drain_first = True
