"""THE write order (streams/worker/commit.py), step by step, with recording fakes.

Every fake is ``create_autospec(<the real class>, spec_set=True)``, so it cannot call
or answer anything the real producer, sink or table does not have; each records when
a write starts and when it is acknowledged, and acknowledgements take time (the
broker's acks arrive later), so a step that does not wait for the one before it shows
up in the log. The assertions pin the order of every step: swapping any two of them,
or dropping a wait, fails a test here (checked by doing it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from unittest.mock import create_autospec

import pytest
from faust.transport.drivers.aiokafka import Producer as FaustProducer

from streams.metrics import Metrics
from streams.pipeline.records import BatchResult, OutputRecord
from streams.redis_sink import RedisProfileSink
from streams.worker.acked_producer import AckedProducer, DeliveryFailed
from streams.worker.commit import AtLeastOnceCommit, ExactlyOnceCommit, newest_offsets
from streams.worker.faust_glue.table import PartitionedTable

CHANGELOG = "app-customer-state-changelog"
OUTPUTS = {
    "tier-changes": "p.tier-changes",
    "alerts": "p.alerts",
    "dead-letters": "p.dead-letters",
    "audit": "p.audit",
}
PREFIX = "app-grp-"


def _batch() -> BatchResult:
    """Outputs caused on two partitions; three new states, two of them on partition 1."""
    return BatchResult(
        states=[(1, b"c1", b"s1"), (0, b"c0", b"s0"), (1, b"c3", b"s3")],
        outputs=[
            OutputRecord("tier-changes", b"c1", b"tc", 1),
            OutputRecord("alerts", b"c0", b"al", 0),
            OutputRecord("dead-letters", b"c9", b"dl", 1),
        ],
        profiles={b"c1": {"version": "4"}, b"c0": {"version": "2"}, b"c3": {"version": "9"}},
    )


#: What the fakes did, in order: ("store", ...) tuples and step names.
Log = list[Any]


def _sink(log: Log) -> Any:
    sink = create_autospec(RedisProfileSink, spec_set=True, instance=True)

    async def write(profiles: dict[bytes, dict[str, str]]) -> int:
        log.append("profiles writing")
        await asyncio.sleep(0.01)  # Redis round trips (and retries while it is down)
        log.append("profiles written")
        return len(profiles)

    async def erase(keys: Sequence[bytes]) -> int:
        if not keys:  # as the real sink: nothing to erase, no round trip
            return 0
        log.append("profiles erasing")
        await asyncio.sleep(0.01)
        log.append(("profiles erased", list(keys)))
        return len(keys)

    sink.write.side_effect = write
    sink.erase.side_effect = erase
    return sink


def _table(log: Log) -> Any:
    table = create_autospec(PartitionedTable, spec_set=True, instance=True)

    def put_many(
        partition: int, items: Sequence[tuple[bytes, bytes | None]], offset: int | None
    ) -> None:
        log.append(("store", partition, [k for k, _v in items], offset))
        log.extend(("tombstone", partition, k) for k, v in items if v is None)

    table.put_many.side_effect = put_many
    return table


# -- at_least_once -------------------------------------------------------------------


def _acked_producer(log: Log, fail: str | None = None) -> Any:
    """AckedProducer whose acks come later; changelog offsets are 100 * partition + n."""
    producer = create_autospec(AckedProducer, spec_set=True, instance=True)
    next_offset: dict[tuple[str, int], int] = {}

    async def send_all(records: Sequence[tuple[str, bytes | None, bytes, int | None]]) -> Any:
        kind = "changelog" if records and records[0][0] == CHANGELOG else "outputs"
        log.append(f"{kind} sent")
        await asyncio.sleep(0.01)  # the broker's acknowledgements take a while
        if fail == kind:
            raise DeliveryFailed(f"{kind}: broker said no")
        log.append(f"{kind} acked")
        delivered = []
        for topic, _key, _value, partition in records:
            p = partition or 0
            next_offset[topic, p] = next_offset.get((topic, p), 100 * p) + 1
            delivered.append((p, next_offset[topic, p]))
        return delivered

    producer.send_all.side_effect = send_all
    return producer


def _at_least_once(log: Log, fail: str | None = None) -> tuple[AtLeastOnceCommit, Any]:
    producer = _acked_producer(log, fail)
    commit = AtLeastOnceCommit(producer, _sink(log), _table(log), OUTPUTS, CHANGELOG, Metrics())
    return commit, producer


async def test_at_least_once_writes_everything_in_order_and_acks_the_input_last() -> None:
    log: Log = []
    commit, producer = _at_least_once(log)

    await commit.commit(_batch(), lambda: log.append("inputs acked"))

    # 1. outputs acknowledged and profiles written, overlapping, before anything else
    assert set(log[:4]) == {"outputs sent", "outputs acked", "profiles writing", "profiles written"}
    assert log.index("outputs sent") < log.index("outputs acked")
    # 2. changelog acknowledged, 3. store written per partition with the newest
    #    acknowledged changelog offset, 4. only then the input acknowledged
    assert log[4:] == [
        "changelog sent",
        "changelog acked",
        ("store", 1, [b"c1", b"c3"], 102),
        ("store", 0, [b"c0"], 1),
        "inputs acked",
    ]
    outputs_call, changelog_call = producer.send_all.call_args_list
    assert outputs_call.args[0] == [
        ("p.tier-changes", b"c1", b"tc", None),
        ("p.alerts", b"c0", b"al", None),
        ("p.dead-letters", b"c9", b"dl", None),
    ]
    assert changelog_call.args[0] == [
        (CHANGELOG, b"c1", b"s1", 1),
        (CHANGELOG, b"c0", b"s0", 0),
        (CHANGELOG, b"c3", b"s3", 1),
    ]


@pytest.mark.parametrize("fail", ["outputs", "changelog"])
async def test_at_least_once_acks_nothing_after_a_failed_write(fail: str) -> None:
    log: Log = []
    commit, _producer = _at_least_once(log, fail=fail)

    with pytest.raises(DeliveryFailed):
        await commit.commit(_batch(), lambda: log.append("inputs acked"))

    assert "inputs acked" not in log
    assert not [e for e in log if isinstance(e, tuple)], "the store moved past a failed write"
    if fail == "outputs":
        assert "changelog sent" not in log


async def test_at_least_once_batch_without_states_still_acks_after_outputs() -> None:
    log: Log = []
    commit, _producer = _at_least_once(log)
    batch = _batch()
    batch.states, batch.profiles = [], {}

    await commit.commit(batch, lambda: log.append("inputs acked"))

    assert log[-1] == "inputs acked"
    assert log.index("outputs acked") < log.index("inputs acked")


def _erasure_batch() -> BatchResult:
    """c0 erased; c1 erased and created again later in the batch (a new state)."""
    return BatchResult(
        states=[(1, b"c1", b"s1-new")],
        tombstones=[(0, b"c0")],
        erased_profiles=[b"c0", b"c1"],
        outputs=[OutputRecord("audit", b"c0", b"er0", 0), OutputRecord("audit", b"c1", b"er1", 1)],
        profiles={b"c1": {"version": "1"}},
    )


async def test_at_least_once_erasure_deletes_redis_first_and_acks_after_the_tombstone() -> None:
    log: Log = []
    commit, producer = _at_least_once(log)

    await commit.commit(_erasure_batch(), lambda: log.append("inputs acked"))

    # the erased profiles go before any profile of the batch is written
    assert log.index(("profiles erased", [b"c0", b"c1"])) < log.index("profiles writing")
    # the tombstone goes to the changelog with the new states, is acknowledged, the
    # store deletes the key, and only then is the request acknowledged
    outputs_call, changelog_call = producer.send_all.call_args_list
    assert outputs_call.args[0] == [
        ("p.audit", b"c0", b"er0", None),
        ("p.audit", b"c1", b"er1", None),
    ]
    assert changelog_call.args[0] == [(CHANGELOG, b"c1", b"s1-new", 1), (CHANGELOG, b"c0", None, 0)]
    assert log[-5:] == [
        "changelog acked",
        ("store", 1, [b"c1"], 101),
        ("store", 0, [b"c0"], 1),
        ("tombstone", 0, b"c0"),
        "inputs acked",
    ]


async def test_exactly_once_erasure_goes_into_the_transaction_before_the_ack() -> None:
    log: Log = []
    commit = _exactly_once(log)

    await commit.commit(_erasure_batch(), lambda: log.append("inputs acked"))

    assert log.index(("profiles erased", [b"c0", b"c1"])) < log.index("profiles writing")
    assert ("sent", CHANGELOG, b"c0", f"{PREFIX}0") in log
    assert log.index(("acked", CHANGELOG, b"c0")) < log.index("inputs acked")
    assert ("tombstone", 0, b"c0") in log and log[-1] == "inputs acked"


def test_newest_offset_per_partition() -> None:
    states = [(1, b"a", b""), (0, b"b", b""), (1, b"c", b""), (1, b"d", b"")]
    assert newest_offsets(states, [(1, 7), (0, 3), (1, 9), (1, 8)]) == {1: 9, 0: 3}


# -- exactly_once --------------------------------------------------------------------


def _faust_producer(log: Log, fail_topic: str | None = None) -> Any:
    """faust's (aiokafka) producer: send() returns a future the broker resolves later."""
    producer = create_autospec(FaustProducer, spec_set=True, instance=True)

    async def send(
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> asyncio.Future[None]:
        log.append(("sent", topic, key, transactional_id))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def acked() -> None:
            if topic == fail_topic:
                fut.set_exception(RuntimeError("transaction aborted"))
            else:
                log.append(("acked", topic, key))
                fut.set_result(None)

        asyncio.get_running_loop().call_later(0.02, acked)
        return fut

    producer.send.side_effect = send
    return producer


def _exactly_once(log: Log, fail_topic: str | None = None) -> ExactlyOnceCommit:
    producer = _faust_producer(log, fail_topic)
    return ExactlyOnceCommit(
        lambda: producer, lambda: PREFIX, _sink(log), _table(log), OUTPUTS, CHANGELOG, Metrics()
    )


async def test_exactly_once_sends_into_the_source_transactions_and_acks_the_input_last() -> None:
    log: Log = []
    commit = _exactly_once(log)

    await commit.commit(_batch(), lambda: log.append("inputs acked"))

    sent = [e for e in log if e[0] == "sent"]
    acked = [e for e in log if e[0] == "acked"]
    # 1. outputs sent into the transaction of the partition that caused them
    assert log[:3] == [
        ("sent", "p.tier-changes", b"c1", f"{PREFIX}1"),
        ("sent", "p.alerts", b"c0", f"{PREFIX}0"),
        ("sent", "p.dead-letters", b"c9", f"{PREFIX}1"),
    ]
    # 2. profiles written, 3. store written without an offset (it runs ahead of the
    #    transaction), 4. changelog sent into the transaction of its partition
    after_outputs = [e for e in log[3:] if e[0] != "acked"]
    assert after_outputs == [
        "profiles writing",
        "profiles written",
        ("store", 1, [b"c1", b"c3"], None),
        ("store", 0, [b"c0"], None),
        ("sent", CHANGELOG, b"c1", f"{PREFIX}1"),
        ("sent", CHANGELOG, b"c0", f"{PREFIX}0"),
        ("sent", CHANGELOG, b"c3", f"{PREFIX}1"),
        "inputs acked",
    ]
    # 5. every send acknowledged, 6. only then the input acknowledged
    assert len(sent) == len(acked) == 6
    assert log[-1] == "inputs acked"


async def test_exactly_once_acks_no_input_when_a_send_fails() -> None:
    log: Log = []
    commit = _exactly_once(log, fail_topic=CHANGELOG)

    with pytest.raises(RuntimeError, match="transaction aborted"):
        await commit.commit(_batch(), lambda: log.append("inputs acked"))

    assert "inputs acked" not in log
