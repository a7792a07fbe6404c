"""The Redis profile sink on a real Redis: versioned, idempotent, survives an outage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis

from streams.metrics import Metrics
from streams.redis_sink import RedisProfileSink, connect, profile_key, tier_counts_key


def r_fields(url: str, prefix: str, cid: str) -> dict[str, str]:
    with redis.Redis.from_url(url, decode_responses=True) as r:
        return r.hgetall(profile_key(prefix, cid))  # type: ignore[return-value]


def _fields(tier: str, version: int, aum: str = "1.00") -> dict[str, str]:
    return {"customer_id": "x", "tier": tier, "aum_cny": aum, "version": str(version)}


async def test_older_versions_never_overwrite_newer_and_counts_stay_exact(
    redis_url: str, redis_key_prefix: str
) -> None:
    metrics = Metrics()
    client = connect(redis_url)
    sink = RedisProfileSink(client, redis_key_prefix, metrics)
    try:
        assert await sink.write({b"c1": _fields("mass", 1), b"c2": _fields("mass", 1)}) == 2
        assert await sink.write({b"c1": _fields("affluent", 3, "600000.00")}) == 1
        # a replayed, older version arrives late: ignored
        assert await sink.write({b"c1": _fields("mass", 2)}) == 0
        # the same version again (redelivery): ignored, idempotent
        assert await sink.write({b"c1": _fields("affluent", 3, "600000.00")}) == 0
        # the same version decided again with other fields (a re-run after a crash that
        # applied the same events in another order): the re-run wins, counts follow
        assert await sink.write({b"c2": _fields("affluent", 1, "500000.00")}) == 1
        assert await sink.write({b"c2": _fields("mass", 1, "400000.00")}) == 1
        assert r_fields(redis_url, redis_key_prefix, "c2")["aum_cny"] == "400000.00"
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        assert r.hgetall(profile_key(redis_key_prefix, "c1"))["tier"] == "affluent"
        assert r.hgetall(profile_key(redis_key_prefix, "c1"))["version"] == "3"
        assert await sink.tier_counts() == {"mass": 1, "affluent": 1}
        assert r.hgetall(tier_counts_key(redis_key_prefix)) == {"mass": "1", "affluent": "1"}
        stale = metrics.registry.get_sample_value(
            "tierstream_redis_profile_writes_total", {"result": "stale"}
        )
        assert stale == 2
    finally:
        await client.aclose()


async def test_outage_blocks_with_backoff_then_writes_everything(
    private_redis: tuple[str, Callable[[], None], Callable[[], None]],
) -> None:
    url, start_redis, stop_redis = private_redis
    stop_redis()  # down before the first write
    metrics = Metrics()
    client = connect(url)
    sink = RedisProfileSink(client, "t:", metrics, backoff_initial=0.05, backoff_max=0.2)
    profiles = {f"c{i}".encode(): _fields("mass", 1) for i in range(50)}
    task = asyncio.create_task(sink.write(profiles))
    await asyncio.sleep(1.0)
    assert not task.done(), "write must wait for Redis, not drop the batch"
    assert metrics.registry.get_sample_value("tierstream_redis_backlog_profiles") == 50
    errors = metrics.registry.get_sample_value("tierstream_redis_write_errors_total")
    assert errors is not None and errors >= 3
    start_redis()
    try:
        assert await asyncio.wait_for(task, 20) == 50
        assert metrics.registry.get_sample_value("tierstream_redis_backlog_profiles") == 0
        r = redis.Redis.from_url(url)
        assert r.hlen("t:customer:c49") == 4
        assert r.hget("t:tier-counts", "mass") == b"50"
    finally:
        await client.aclose()


async def test_a_batch_larger_than_one_script_call_is_written_whole(
    redis_url: str, redis_key_prefix: str
) -> None:
    """Profiles go to Redis in chunks (one script call each): every chunk is written,
    stale entries anywhere in the batch are skipped, and the counts add up."""
    metrics = Metrics()
    client = connect(redis_url)
    sink = RedisProfileSink(client, redis_key_prefix, metrics)
    try:
        n = 450  # more than two chunks
        first = {f"c{i}".encode(): _fields("mass", 5) for i in range(n)}
        assert await sink.write(first) == n
        # every third one is older than what Redis holds: skipped; the rest move tier
        second = {
            f"c{i}".encode(): _fields("mass", 4) if i % 3 == 0 else _fields("hnw", 6)
            for i in range(n)
        }
        assert await sink.write(second) == n - n // 3
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        assert r.hget(profile_key(redis_key_prefix, "c0"), "version") == "5"
        assert r.hget(profile_key(redis_key_prefix, "c1"), "tier") == "hnw"
        assert r.hget(profile_key(redis_key_prefix, f"c{n - 1}"), "aum_cny") == "1.00"
        assert await sink.tier_counts() == {"mass": n // 3, "hnw": n - n // 3}
    finally:
        await client.aclose()
