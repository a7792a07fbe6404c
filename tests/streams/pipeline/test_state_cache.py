"""The state cache: LRU bookkeeping, and that it never changes a decision."""

from __future__ import annotations

import random
import zlib

import orjson
import pytest

from schemas.timefmt import format_ts_utc
from state.customer import CustomerState
from state.rules import load_rules
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.records import RawMessage
from streams.pipeline.state_cache import StateCache
from streams.tools.simulator import SimConfig, Simulator

RULES = load_rules()


def _state(cid: str) -> bytes:
    return CustomerState(cid).to_bytes()


def test_take_removes_and_counts() -> None:
    c = StateCache(10)
    a = _state("a")
    c.put_all([(b"a", 0, a)])
    assert c.take(b"a") is a
    assert c.take(b"a") is None  # the batch owns it until it is put back
    assert (c.hits, c.misses, len(c)) == (1, 1, 0)


def test_least_recently_used_goes_first() -> None:
    c = StateCache(3)
    c.put_all([(k, 0, _state(k.decode())) for k in (b"a", b"b", b"c")])
    c.put_all([(b"a", 0, _state("a"))])  # a used again: b is now the oldest
    c.put_all([(b"d", 1, _state("d"))])
    assert len(c) == 3
    assert c.take(b"b") is None
    assert all(c.take(k) is not None for k in (b"a", b"c", b"d"))


def test_drop_partitions_forgets_only_those() -> None:
    c = StateCache(10)
    c.put_all([(b"a", 0, _state("a")), (b"b", 1, _state("b")), (b"c", 2, _state("c"))])
    assert c.drop_partitions({0, 2}) == 2
    assert c.take(b"a") is None and c.take(b"c") is None and c.take(b"b") is not None


def test_capacity_zero_keeps_nothing_and_negative_is_refused() -> None:
    c = StateCache(0)
    c.put_all([(b"a", 0, _state("a"))])
    assert len(c) == 0
    with pytest.raises(ValueError, match="capacity"):
        StateCache(-1)


def _tick(partition: int, ts_ms: int) -> RawMessage:
    value = orjson.dumps(
        {
            "event_id": f"tick-{partition}-{ts_ms}",
            "partition": partition,
            "ts": format_ts_utc(ts_ms),
        }
    )
    return RawMessage("ticks", partition, 0, None, value, ts_ms)


def _stream(seed: int, n: int, partitions: int) -> list[RawMessage]:
    """Simulated input with the awkward cases mixed in: redeliveries (duplicates),
    events the core rejects (unknown currency: decoded, then a CoreError), undecodable
    bytes, and clock ticks that fire timers."""
    rnd = random.Random(seed)
    sim = Simulator(SimConfig(customers=120, seed=seed))
    out: list[RawMessage] = []
    last_ts = 0
    for i, rec in enumerate(sim.records(limit=n)):
        p = zlib.crc32(rec.key) % partitions
        value = rec.value
        if rec.topic == "transactions" and rnd.random() < 0.03:
            doc = orjson.loads(value)
            doc["currency"] = "XYZ"
            doc["event_id"] += "-bad"
            value = orjson.dumps(doc)
        elif rnd.random() < 0.01:
            value = b"\xff not json"
        out.append(RawMessage(rec.topic, p, i, rec.key, value, rec.ts_ms))
        last_ts = max(last_ts, rec.ts_ms)
        if out and rnd.random() < 0.05:  # a redelivery of something recent
            out.append(out[rnd.randrange(max(0, len(out) - 200), len(out))])
        if i % 250 == 249:  # a tick per partition, a few days on: timers fall due
            out.extend(_tick(q, last_ts + rnd.randrange(1, 5) * 86_400_000) for q in range(2))
    return out


@pytest.mark.parametrize("capacity", [1, 40, 100_000])
@pytest.mark.parametrize("seed", [3, 11])
def test_cached_processing_decides_exactly_what_uncached_processing_does(
    capacity: int, seed: int
) -> None:
    """Same outputs, states and profiles batch by batch, with a cache that holds one
    state, a fraction of the customers, or all of them; and after every batch each
    cached state is exactly what the store holds for its key."""
    msgs = _stream(seed, 3000, partitions=2)
    plain, cached = BatchProcessor(RULES), BatchProcessor(RULES, cache=StateCache(capacity))
    store_plain: dict[bytes, bytes] = {}
    store_cached: dict[bytes, bytes] = {}
    rnd = random.Random(seed)
    i = 0
    dead = ticks_fired = 0
    while i < len(msgs):
        size = rnd.choice([1, 7, 50, 300])
        batch = msgs[i : i + size]
        i += size
        a = plain.process(batch, lambda _p, k: store_plain.get(k))
        b = cached.process(batch, lambda _p, k: store_cached.get(k))
        assert b.outputs == a.outputs
        assert b.states == a.states
        assert b.profiles == a.profiles
        assert b.counts == a.counts
        for _p, k, v in a.states:
            store_plain[k] = v
        for _p, k, v in b.states:
            store_cached[k] = v
        assert cached.cache is not None
        for key, (_p, raw) in cached.cache._entries.items():
            assert raw == store_cached[key]
        dead += sum(n for (t, r), n in a.counts.items() if r == "dead_letter")
        ticks_fired += a.counts.get(("ticks", "timers_fired"), 0)
    assert store_cached == store_plain
    assert dead > 0 and ticks_fired > 0  # the awkward cases were really exercised
    assert cached.cache is not None and cached.cache.hits > 0
    if capacity == 1:
        assert len(cached.cache) == 1
