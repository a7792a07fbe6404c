"""How consumed input messages reach the worker: faust's consumer, minus its per-message tasks.

faust-streaming hands every consumed message through three layers before an agent
sees it: the consumer's drain loop (which runs each delivery as a task raced against
a "flow suspended" event — two tasks per message), the conductor (which wraps the
message in an ``Event``), and a ``Stream`` (sensors, context variables, per-event
acknowledgement bookkeeping). Measured here, a minimal faust agent costs about
160 µs of CPU per message before it does any work; tierstream's own work per event
is well under that. The worker batches anyway (it aligns inputs by event time and
writes per batch), so the per-message layers buy it nothing.

What stays faust's: the consumer group and its rebalancing, fetching, offset
tracking and commits, the tables and their changelogs, the web server. What changes:

* ``BufferedInputTopic`` is a faust topic whose "queue" is an ``InputBuffer``: the
  conductor still subscribes it, routes each message to it and counts its reference,
  but the message is appended to a list instead of becoming an ``Event`` in a
  stream's queue. The worker takes everything buffered at once, so batches grow with
  load (more work waiting → bigger batches) without a fixed linger.
* ``install_lean_drain`` replaces the consumer's drain loop. While the flow is
  active, each fetched batch of records is handled batch by batch: the checks faust's
  ``getmany`` makes per record (flow, generation, active partition, end offset for
  the monitor) are made per partition, and a record of an input topic goes straight
  into its ``InputBuffer`` -- the conductor's per-message handler (a lock, two awaits
  for flow control and the producer buffer, a channel lookup and a decode coroutine)
  is what delivering to the one channel of these topics amounts to, done inline.
  Records of any other topic still go through the conductor. While a rebalance has
  suspended the flow it falls back to faust's own loop (``getmany`` seeks back to the
  committed offsets, each delivery raced against the suspension).

Messages are acknowledged through faust's own ``Message.ack`` once processed, so
faust commits exactly what the worker acknowledged, as before. Messages fetched
before a rebalance (an older consumer generation) are dropped at intake, as faust's
``Stream`` does: the consumer seeks back to the committed offsets and fetches them
again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import MethodType
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import TP


class InputBuffer:
    """Stands in for a faust stream's queue (the conductor's side of the interface).

    Unbounded: the conductor must never block on it (a blocked delivery would stall
    the whole consumer). Fetching is paused per partition, faust's way, once
    ``pressure_high`` messages are waiting, and resumed when the worker has taken
    them.
    """

    def __init__(self, pressure_high: int) -> None:
        self.pressure_high = pressure_high
        self._items: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._pending_drop: set[Callable[[], None]] = set()

    # -- the conductor's side ---------------------------------------------------------

    def full(self) -> bool:
        return False

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait_enhanced(
        self,
        value: Any,
        *,
        on_pressure_high: Callable[[], None],
        on_pressure_drop: Callable[[], None],
    ) -> bool:
        self._items.append(value)
        self._ready.set()
        if len(self._items) >= self.pressure_high and on_pressure_drop not in self._pending_drop:
            self._pending_drop.add(on_pressure_drop)
            on_pressure_high()
            return True
        return False

    # -- the worker's side ------------------------------------------------------------

    async def take(self, max_n: int) -> list[Any]:
        """Wait until something is buffered, then return up to ``max_n`` messages."""
        items = self._items
        while not items:
            self._ready.clear()
            await self._ready.wait()
        n = min(max_n, len(items))
        out = [items.popleft() for _ in range(n)]
        if self._pending_drop and len(items) < self.pressure_high // 2:
            callbacks, self._pending_drop = self._pending_drop, set()
            for resume in callbacks:
                resume()
        return out


class BufferedInputTopic(faust.Topic):
    """A faust topic that delivers raw messages into an ``InputBuffer``."""

    buffer: InputBuffer

    @property
    def queue(self) -> Any:
        return self.buffer

    def _compile_decode(self) -> None:
        # faust compiles a schema decoder into ``self.decode`` at construction (and on
        # schema changes); this topic's decode hands the message through as it is.
        self.decode = _pass_through  # type: ignore[method-assign]


async def _pass_through(message: Any, *, propagate: bool = False) -> Any:
    return message


def install_rewind_uncommitted(consumer: Any) -> None:
    """Make faust's "seek back to the committed offsets" rewind every input partition,
    including those the group has never committed.

    faust drops fetched records in two places and relies on a seek to the committed
    offsets (``Consumer.perform_seek``) to read them again: ``Consumer.getmany`` when it
    finds the flow stopped (a rebalance or recovery in progress) after the fetch
    returned, and the end of recovery. A fetch pending across a rebalance returns just
    there: the partitions it waited on are faust's live set of active partitions, which
    recovery's end fills with the input partitions, whose records aiokafka prefetched
    meanwhile. But aiokafka's ``seek_to_committed`` seeks only partitions whose committed
    offset is above 0, so a partition the group never committed is not rewound: the
    dropped records are skipped, and faust's commit (which does not check for a hole at
    the head when nothing was committed yet) later commits past them. Those records are
    never processed — at the head of every input partition whose first records arrive
    around a rebalance (a new deployment under load, a quiet partition, a kill and
    restart while customers join): a customer's first balance skipped, their
    transaction then decided ``initial mass`` instead of ``initial affluent``.

    This seeks such partitions to their beginning (the earliest offset the broker
    still holds, as ``auto_offset_reset=earliest`` does) whenever faust seeks back.
    Records this worker had processed but not committed there are processed again: the
    core drops them as duplicates (at_least_once), or their outputs were in the aborted
    transaction (exactly_once). Changelog partitions are left to faust's recovery.
    """
    thread = consumer._thread
    is_changelog = consumer._is_changelog_tp

    async def seek_to_committed() -> Any:
        committed = await thread.seek_to_committed()
        uncommitted = [
            tp for tp, offset in committed.items() if not offset and not is_changelog(tp)
        ]
        if uncommitted:
            await thread.seek_to_beginning(*uncommitted)
        return committed

    consumer.seek_to_committed = seek_to_committed


@dataclass(frozen=True)
class DirectInput:
    """Topics whose records go straight into ``buffer`` (the worker's input topics:
    faust's conductor routes them to that buffer's topic and to nothing else)."""

    topics: frozenset[str]
    buffer: InputBuffer


def install_lean_drain(consumer: Any, direct: DirectInput | None = None) -> None:
    """Replace ``consumer._drain_messages`` (see the module docstring)."""
    consumer._tierstream_direct = direct
    consumer._drain_messages = MethodType(_lean_drain_messages, consumer)


async def _lean_drain_messages(self: Any, fetcher: Any) -> None:
    """faust's ``Consumer._drain_messages`` (faust-streaming 0.15), with the per-message
    ``wait_first`` task race taken only while the flow is suspended, and delivery
    tracked per partition and consumer generation.

    Why the tracking: faust resumes the input partitions at the end of recovery before
    it seeks them back to the committed offsets (``Recovery.on_recovery_completed``,
    ``_resume_streams``), and a fetch pending across the rebalance can hand out records
    in between. faust's seek then resets its read offset (``_read_offset``) to the
    committed offset while the rest of that fetched batch is still being delivered: the
    next record looked like a jump of hundreds of offsets, faust registered them as a
    gap (offsets to commit without a message, meant for transaction markers), and the
    gap filled its list of acknowledged offsets with duplicates, so every commit moved
    one offset and the group's commits crawled (found by the kill test under
    exactly_once: four minutes, ~250 offsets). Records of the current generation are
    delivered once, in offset order, and a gap is only what lies between two delivered
    records; a record whose delivery was cut short by a suspended flow is not counted
    as delivered, so the seek back delivers it. Changelog partitions keep faust's own
    bookkeeping (its recovery seeks them and counts what it read).
    """
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    suspended = self.suspend_flow.is_set
    flow_active = self.app.flow_control.is_active

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    #: tp -> (consumer generation, next offset not yet delivered in that generation);
    #: input partitions only: changelog partitions are sought by faust's recovery, which
    #: keeps its own bookkeeping of what it read
    delivered: dict[Any, tuple[int, int]] = {}
    changelogs = frozenset(self.app.tables.changelog_topics)
    commit_every = self._commit_every
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    direct: DirectInput | None = getattr(self, "_tierstream_direct", None)
    pressure: dict[Any, tuple[Callable[[], None], Callable[[], None]]] = {}

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            if direct is not None and flow_active() and not suspended():
                await _drain_batch(self, direct, pressure, delivered, changelogs)
                unset_flag(CONSUMER_FETCHING)
                continue
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if self.should_stop:
                continue
            async for tp, message in ait:
                num_since_yield += 1
                if num_since_yield > yield_every:
                    await sleep(0)
                    num_since_yield = 0
                offset = message.offset
                mine = None if tp.topic in changelogs else delivered.get(tp)
                if mine is not None and mine[0] == message.generation_id:
                    # this generation delivered everything before mine[1] already: a seek
                    # back to the committed offset must not deliver it again, nor make
                    # the rest of a batch fetched before the seek look like a gap
                    if offset < mine[1]:
                        continue
                    r_offset: int | None = mine[1] - 1
                else:
                    r_offset = get_read_offset(tp)
                if r_offset is None or offset >= r_offset:
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if flow_active() and not suspended():
                        await callback(message)
                    else:
                        delivery = callback(message)
                        race = await self.wait_first(delivery, self.suspend_flow.wait())
                        if delivery not in race.done and tp.topic not in changelogs:
                            continue  # not delivered: faust's seek back reads it again
                    if tp.topic not in changelogs:
                        delivered[tp] = (message.generation_id, offset + 1)
                    set_read_offset(tp, offset)
            unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


async def _drain_batch(
    self: Any,
    direct: DirectInput,
    pressure: dict[Any, tuple[Callable[[], None], Callable[[], None]]],
    delivered: dict[Any, tuple[int, int]],
    changelogs: frozenset[str],
) -> None:
    """One fetched batch, flow active: what faust's ``getmany`` and drain loop do for
    it, with the per-record checks made per partition and input records delivered
    straight into the buffer (see the module docstring). Delivery is tracked per
    partition and consumer generation in ``delivered``, shared with the drain loop
    (``_lean_drain_messages`` says why): a record this generation delivered already
    is not delivered again, and a gap is only what lies between two delivered records.

    The loop over a partition's records awaits nothing for input records, so no
    rebalance can happen in it; after anything that does await (a gap in the offsets,
    a commit, a record of another topic) it stops if the consumer generation or the
    flow changed, as ``getmany`` does: the records left are fetched again after the
    consumer seeks back to the committed offsets.
    """
    app = self.app
    records, active = await self._wait_next_records(1.0)
    await self.sleep(0)
    if not records or self.should_stop:
        return
    if not self.flow_active:  # a rebalance began while fetching: getmany's way out
        try:
            await self.perform_seek()
        except Exception as exc:
            self.log.warning(f"exception performing seek when flow not active {exc}")
        return
    generation = app.consumer_generation_id
    flow_active = app.flow_control.is_active
    suspended = self.suspend_flow.is_set

    def moved_on() -> bool:
        return (
            app.consumer_generation_id != generation
            or not self.flow_active
            or not flow_active()
            or suspended()
        )

    read_offset = self._read_offset
    commit_every = self._commit_every
    acks_enabled_for = app.topics.acks_enabled_for
    to_message = self._to_message
    track_end_offset = app.monitor.track_tp_end_offset
    put = direct.buffer.put_nowait_enhanced
    topics = direct.topics
    buffered = self._buffered_partitions
    for tp, recs in records.items():
        if active is not None and tp not in active and tp not in buffered:
            continue
        track_end_offset(tp, self.highwater(tp))
        is_input = tp.topic in topics
        tracked = tp.topic not in changelogs
        if is_input:
            callbacks = pressure.get(tp)
            if callbacks is None:  # faust's TP: the records' keys are aiokafka's
                callbacks = pressure[tp] = _pressure_callbacks(self, TP(tp.topic, tp.partition))
            high, drop = callbacks
        for record in recs:
            offset = record.offset
            mine = delivered.get(tp) if tracked else None
            if mine is not None and mine[0] == generation:
                if offset < mine[1]:
                    continue  # this generation delivered it already
                r_offset: int | None = mine[1] - 1
            else:
                r_offset = read_offset.get(tp)
                if r_offset is not None and offset < r_offset:
                    continue  # faust drops (and logs at dev level) what it has read before
            awaited = False
            if r_offset and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                await self._add_gap(tp, r_offset + 1, offset)
                awaited = True
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
                awaited = True
            if awaited and moved_on():
                return
            message = to_message(tp, record)
            if is_input:
                message.incref(1)  # the conductor's count of channels: one
                put(message, on_pressure_high=high, on_pressure_drop=drop)
            else:
                delivery = self.callback(message)
                race = await self.wait_first(delivery, self.suspend_flow.wait())
                if delivery not in race.done and tracked:
                    return  # not delivered: faust's seek back reads it again
                if moved_on():
                    if tracked:
                        delivered[tp] = (generation, offset + 1)
                    read_offset[tp] = offset
                    return
            if tracked:
                delivered[tp] = (generation, offset + 1)
            read_offset[tp] = offset


def _pressure_callbacks(consumer: Any, tp: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    """The conductor's pressure callbacks for one partition: pause fetching it while
    its buffer is over the high mark, resume it when the buffer has drained (the same
    callables every time, so the buffer can tell them apart)."""
    on_topic_buffer_full = consumer.app.sensors.on_topic_buffer_full

    def on_pressure_high() -> None:
        on_topic_buffer_full(tp)
        consumer.on_buffer_full(tp)

    def on_pressure_drop() -> None:
        consumer.on_buffer_drop(tp)

    return on_pressure_high, on_pressure_drop
