"""Customer profiles in Redis, for the CRM's 360° view: the key layout, writes, reads.

Layout (prefix configurable, default ``tierstream:``), spelled out in this module only
(``profile_key``, ``profile_key_pattern``, ``tier_counts_key``, ``synced_key``):

* ``<prefix>customer:<customer_id>`` — a hash of profile fields (state/profile.py),
  including ``version``, a per-customer counter that grows with every applied event;
* ``<prefix>tier-counts`` — a hash tier -> number of customers, for fast totals;
* ``<prefix>synced:<partition>`` — set once a worker has written every profile of the
  partition: a Redis that restarted empty has none, so the owners rewrite theirs.

Writes go through one call of a Redis Function per chunk of profiles that compares
versions (streams/redis_functions.py: a library loaded once by an administrator, so
the worker runs no Lua of its own), so they are idempotent and ordered: a replay, a
rebalance or a slow worker can never move a profile backwards, a re-run of the same
events after a crash replaces what the first run wrote, and the tier counts move only
when a write changes the tier. When Redis is
unreachable the sink retries with exponential backoff and the caller waits
(backpressure): the batch's input offsets are not acknowledged until its profiles are
written, so an outage delays updates but never loses one. The backlog
(profiles waiting) is bounded by one batch and exported as a metric.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streams.metrics import Metrics
from streams.redis_functions import (
    FN_ERASE,
    FN_PROFILE_SCAN,
    FN_UPSERT,
    FUNCTIONS,
    INSTALL_HINT,
    LIBRARY,
    is_missing_function,
)
from streams.settings import SecurityConfigError

log = logging.getLogger(__name__)

#: Profiles per function call: big enough that packing and round trips stay a small
#: share of a batch, small enough that one call blocks Redis for at most a few ms.
_CHUNK = 200


_PROFILE = "customer:"
#: Keys asked of SCAN per step; profile keys fetched per pipelined HGETALL round.
_SCAN_COUNT = 1000
_FETCH_CHUNK = 500


def profile_key(prefix: str, customer_id: str) -> str:
    return f"{prefix}{_PROFILE}{customer_id}"


def profile_key_pattern(prefix: str) -> str:
    """The SCAN ``MATCH`` pattern of every profile key under ``prefix``.

    A prefix with glob characters would match other deployments' keys: refused.
    """
    if any(ch in prefix for ch in "*?[]\\"):
        raise ValueError(f"Redis prefix must not contain glob characters: {prefix!r}")
    return f"{prefix}{_PROFILE}*"


def customer_id_of(prefix: str, key: bytes | str) -> str:
    """The customer id of a profile key (the inverse of ``profile_key``)."""
    return _text(key)[len(prefix) + len(_PROFILE) :]


def tier_counts_key(prefix: str) -> str:
    return f"{prefix}tier-counts"


def synced_key(prefix: str, partition: int) -> str:
    return f"{prefix}synced:{partition}"


def quota_key(prefix: str, principal: str, day: str) -> str:
    """``<prefix>quota:<token name>:<YYYY-MM-DD>``: a token's profile reads that UTC day."""
    return f"{prefix}quota:{principal}:{day}"


#: A day's quota counter outlives its day by one, then Redis drops it.
_QUOTA_TTL_S = 2 * 86_400


def upsert_calls(
    prefix: str, profiles: Mapping[bytes, Mapping[str, str]]
) -> Iterator[tuple[list[str], list[bytes]]]:
    """(keys, args) of each ``FN_UPSERT`` call that writes ``profiles``.

    One call per chunk, each profile's fields as one JSON argument: redis-py packs
    commands argument by argument in Python, so 16 field/value pairs per profile cost
    more than the rest of the write together.
    """
    counts = tier_counts_key(prefix)
    items = list(profiles.items())
    for start in range(0, len(items), _CHUNK):
        chunk = items[start : start + _CHUNK]
        keys = [profile_key(prefix, k.decode()) for k, _ in chunk]
        keys.append(counts)
        yield keys, [orjson.dumps(fields) for _, fields in chunk]


def connect(url: str, password: str | None = None, username: str | None = None) -> aioredis.Redis:
    """An asyncio client; ``rediss://`` URLs use TLS, credentials may be in the URL."""
    kwargs: dict[str, object] = {"socket_timeout": 5, "socket_connect_timeout": 5}
    if password:
        kwargs["password"] = password
    if username:
        kwargs["username"] = username
    return aioredis.from_url(url, **kwargs)


class RedisProfileSink:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        metrics: Metrics,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.metrics = metrics
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._counts_key = tier_counts_key(prefix)
        self._missing_warned_at = -1e9

    async def write(self, profiles: Mapping[bytes, Mapping[str, str]]) -> int:
        """Write profiles (customer key -> fields); retries until it succeeds.

        Returns how many were newer than what Redis had. Cancellation (worker
        shutdown) propagates: the batch is then not acknowledged and is reprocessed.
        """
        if not profiles:
            return 0
        written = await self._until_done(len(profiles), lambda: self._write_once(profiles))
        self.metrics.redis_writes.labels("written").inc(written)
        self.metrics.redis_writes.labels("stale").inc(len(profiles) - written)
        return written

    async def erase(self, keys: Sequence[bytes]) -> int:
        """Delete the profiles of erased customers and take them out of the tier
        counts; retries until it succeeds (like ``write``). Returns how many existed.
        Idempotent: erasing twice changes nothing the second time."""
        if not keys:
            return 0
        return await self._until_done(len(keys), lambda: self._erase_once(keys))

    async def _until_done(self, pending: int, attempt: Callable[[], Awaitable[int]]) -> int:
        """Run ``attempt`` until Redis takes it, with exponential backoff (backpressure)."""
        self.metrics.redis_backlog.set(pending)
        delay = self.backoff_initial
        while True:
            try:
                done = await attempt()
            except (RedisError, OSError) as exc:
                self.metrics.redis_errors.inc()
                if is_missing_function(exc):
                    self._warn_missing_functions()
                else:
                    log.warning(
                        "Redis write failed (%s); retrying in %.1fs", type(exc).__name__, delay
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            self.metrics.redis_backlog.set(0)
            return done

    async def _erase_once(self, keys: Sequence[bytes]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(keys), _CHUNK):
            chunk = [profile_key(self.prefix, k.decode()) for k in keys[start : start + _CHUNK]]
            chunk.append(self._counts_key)
            pipe.fcall(FN_ERASE, len(chunk), *chunk)
        return sum(int(r) for r in await pipe.execute())

    async def _write_once(self, profiles: Mapping[bytes, Mapping[str, str]]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for keys, args in upsert_calls(self.prefix, profiles):
            pipe.fcall(FN_UPSERT, len(keys), *keys, *args)
        results = await pipe.execute()
        return sum(int(r) for r in results)

    def _warn_missing_functions(self) -> None:
        """Redis lost (or never had) the library: say what to do, once a minute.

        The worker cannot load it itself (its ACL user has no FUNCTION LOAD, on
        purpose); it keeps retrying, so writes resume once an administrator ran the
        install, and no profile is lost meanwhile (backpressure, as for an outage).
        """
        now = time.monotonic()
        if now - self._missing_warned_at >= 60:
            self._missing_warned_at = now
            log.error(
                "Redis has no %s functions (restarted empty?); profile writes wait: %s",
                LIBRARY,
                INSTALL_HINT,
            )

    def _synced_key(self, partition: int) -> str:
        return synced_key(self.prefix, partition)

    async def unsynced(self, partitions: list[int]) -> list[int]:
        """Partitions whose 'synced' marker is missing: Redis lost (or never had) them.

        A worker marks each partition after writing all its profiles; a Redis that
        restarted empty has no markers, so its owners rewrite everything they hold.
        """
        if not partitions:
            return []
        pipe = self.client.pipeline(transaction=False)
        for p in partitions:
            pipe.exists(self._synced_key(p))
        found = await pipe.execute()
        return [p for p, n in zip(partitions, found, strict=True) if not n]

    async def mark_synced(self, partition: int) -> None:
        await self.client.set(self._synced_key(partition), "1")

    async def tier_counts(self) -> dict[str, int]:
        raw = await self.client.hgetall(self._counts_key)
        return {_text(k): int(v) for k, v in raw.items()}


async def read_profile(client: aioredis.Redis, prefix: str, customer_id: str) -> dict[str, str]:
    raw = await client.hgetall(profile_key(prefix, customer_id))
    return {_text(k): _text(v) for k, v in raw.items()}


async def read_profile_counted(
    client: aioredis.Redis, prefix: str, customer_id: str, principal: str, day: str
) -> tuple[int, dict[str, str]]:
    """A profile and the token's read count of ``day`` after counting this read.

    One pipelined round trip (INCRBY + EXPIRE of the quota key, HGETALL): the count is
    cluster-wide, so a token's daily quota holds however many workers answer it. The
    caller refuses the profile when the count is over the quota.
    """
    key = quota_key(prefix, principal, day)
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, _QUOTA_TTL_S)
    pipe.hgetall(profile_key(prefix, customer_id))
    count, _expire, raw = await pipe.execute()
    return int(count), {_text(k): _text(v) for k, v in raw.items()}


async def scan_profile_keys(client: Any, prefix: str) -> AsyncIterator[list[bytes]]:
    """Every profile key under ``prefix``, in chunks, by SCAN (never KEYS: a scan does
    not block a busy server)."""
    chunk: list[bytes] = []
    async for key in client.scan_iter(match=profile_key_pattern(prefix), count=_SCAN_COUNT):
        chunk.append(key)
        if len(chunk) >= _FETCH_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def profile_values(client: Any, prefix: str, fields: tuple[str, ...]) -> list[list[str]]:
    """``fields`` of every profile under ``prefix`` whose first field is set, as text
    ("" where a later field is missing): the worker's Pareto gauges read AUM,
    contribution and tier. One SCAN step at a time inside Redis (``FN_PROFILE_SCAN``,
    a read-only function: streams/redis_functions.py says why it runs in Redis)."""
    match = profile_key_pattern(prefix)
    width = len(fields)
    rows: list[list[str]] = []
    cursor: bytes | int = 0
    while True:
        cursor, raw = await client.fcall_ro(FN_PROFILE_SCAN, 0, cursor, match, _SCAN_COUNT, *fields)
        flat = [_text(v) for v in raw]
        rows.extend(flat[i : i + width] for i in range(0, len(flat), width))
        if int(cursor) == 0:
            break
    return rows


async def aum_values(client: Any, prefix: str) -> tuple[list[Decimal], int]:
    """The ``aum_cny`` of every profile under ``prefix`` that has one, and how many
    values could not be read as a finite decimal (left out)."""
    values: list[Decimal] = []
    bad = 0
    for (text,) in await profile_values(client, prefix, ("aum_cny",)):
        value = decimal_or_none(text)
        if value is None:
            bad += 1
        else:
            values.append(value)
    return values, bad


def decimal_or_none(text: str) -> Decimal | None:
    """A profile's money field as a finite Decimal, or None if it is not one."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _text(b: bytes | str) -> str:
    return b.decode() if isinstance(b, bytes) else b


#: Every Redis command the service sends: all of them from this module but PING (the
#: health view, streams/http/views.py). Checked by tests/integration/test_security_redis.py
#: (which runs the worker under exactly these rules and finds no denial in ``ACL LOG``):
#: PING (health), HGETALL (profile reads, tier counts), FCALL of the upsert and erase
#: functions and FCALL_RO of the profile scan step and the library check (``+fcall|<name>``: those
#: functions only, streams/redis_functions.py), HGET/HSET/HINCRBY/DEL and SCAN (called
#: *inside* those functions: Redis checks a function's calls against the caller's ACL
#: too), EXISTS + SET on ``<prefix>synced:<partition>`` markers (detecting a Redis that
#: lost its data: the worker's resync). No EVAL, EVALSHA, SCRIPT or FUNCTION: the worker
#: cannot run Lua of its own.
REDIS_ACL_COMMANDS: tuple[str, ...] = (
    "ping",
    "hgetall",
    *(f"{'fcall_ro' if read_only else 'fcall'}|{name}" for name, read_only in FUNCTIONS),
    "hget",
    "hset",
    "hincrby",
    "del",
    "exists",
    "set",
    "scan",
    "incrby",
    "expire",
)


def redis_acl_rules(prefix: str) -> list[str]:
    """``ACL SETUSER <user> on >password`` rules: the key prefix and the commands only.

    No pub/sub channels, no other keys, no admin or dangerous commands (``-@all``
    first, then the allow-list).
    """
    if not prefix or any(ch in prefix for ch in "*?[]\\ "):
        raise SecurityConfigError(
            f"Redis key prefix must be non-empty, without glob chars: {prefix!r}"
        )
    return [
        "resetkeys",
        f"~{prefix}*",
        "resetchannels",
        "-@all",
        *(f"+{c}" for c in REDIS_ACL_COMMANDS),
    ]
