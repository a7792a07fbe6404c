"""Customer profiles in Redis, for the CRM's 360° view: the key layout, writes, reads.

Layout (prefix configurable, default ``tierstream:``), spelled out in this module only
(``profile_key``, ``profile_key_pattern``, ``tier_counts_key``, ``synced_key``):

* ``<prefix>customer:<customer_id>`` — a hash of profile fields (state/profile.py),
  including ``version``, a per-customer counter that grows with every applied event;
* ``<prefix>tier-counts`` — a hash tier -> number of customers, for fast totals;
* ``<prefix>synced:<partition>`` — set once a worker has written every profile of the
  partition: a Redis that restarted empty has none, so the owners rewrite theirs.

Writes go through one Lua script per chunk of profiles that compares versions, so
they are idempotent and ordered: a replay, a rebalance or a slow worker can never move
a profile backwards, a re-run of the same events after a crash replaces what the first
run wrote, and the tier counts move only when a write changes the tier. When Redis is
unreachable the sink retries with exponential backoff and the caller waits
(backpressure): the batch's input offsets are not acknowledged until its profiles are
written, so an outage delays updates but never loses one. The backlog
(profiles waiting) is bounded by one batch and exported as a metric.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streams.metrics import Metrics
from streams.settings import SecurityConfigError

log = logging.getLogger(__name__)

#: KEYS[1..n-1] profile hashes, KEYS[n] the tier-count hash; ARGV[i] the fields of KEYS[i]
#: as one JSON object of strings (version and tier among them). A profile is written
#: when its version is newer than the stored one, or equal with different fields; the
#: tier counts move only when a write changes the tier. Returns how many were written.
#:
#: Why an equal version may overwrite: the version counts applied events, and the same
#: version decided twice means the same events were applied again -- a re-run after a
#: crash (at_least_once: Redis is written before the changelog) or an aborted
#: transaction (exactly_once: Redis is written before the commit). The re-run starts
#: from the committed state, and if some of those events became visible only later, it
#: may apply them in another event-time order than the first run did. Its profile is
#: the one the committed state agrees with, so it must win; an identical re-send is
#: still skipped (counted as stale).
_UPSERT_LUA = """
local written = 0
local counts = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  local key = KEYS[i]
  local fields = cjson.decode(ARGV[i])
  local cur = redis.call('HGET', key, 'version')
  local version = tonumber(fields['version'])
  local write = (not cur) or tonumber(cur) < version
  if (not write) and tonumber(cur) == version then
    for f, v in pairs(fields) do
      if redis.call('HGET', key, f) ~= v then
        write = true
        break
      end
    end
  end
  if write then
    local old_tier = redis.call('HGET', key, 'tier')
    local flat = {}
    for f, v in pairs(fields) do
      flat[#flat + 1] = f
      flat[#flat + 1] = v
    end
    redis.call('HSET', key, unpack(flat))
    local new_tier = fields['tier'] or ''
    if old_tier ~= new_tier then
      if old_tier and old_tier ~= '' then redis.call('HINCRBY', counts, old_tier, -1) end
      if new_tier ~= '' then redis.call('HINCRBY', counts, new_tier, 1) end
    end
    written = written + 1
  end
end
return written
"""

#: Profiles per script call: big enough that packing and round trips stay a small
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


def upsert_calls(
    prefix: str, profiles: Mapping[bytes, Mapping[str, str]]
) -> Iterator[tuple[list[str], list[bytes]]]:
    """(keys, args) of each ``_UPSERT_LUA`` call that writes ``profiles``.

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
        self._script = client.register_script(_UPSERT_LUA)
        self._counts_key = tier_counts_key(prefix)

    async def write(self, profiles: Mapping[bytes, Mapping[str, str]]) -> int:
        """Write profiles (customer key -> fields); retries until it succeeds.

        Returns how many were newer than what Redis had. Cancellation (worker
        shutdown) propagates: the batch is then not acknowledged and is reprocessed.
        """
        if not profiles:
            return 0
        self.metrics.redis_backlog.set(len(profiles))
        delay = self.backoff_initial
        while True:
            try:
                written = await self._write_once(profiles)
            except (RedisError, OSError) as exc:
                self.metrics.redis_errors.inc()
                log.warning("Redis write failed (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            self.metrics.redis_backlog.set(0)
            self.metrics.redis_writes.labels("written").inc(written)
            self.metrics.redis_writes.labels("stale").inc(len(profiles) - written)
            return written

    async def _write_once(self, profiles: Mapping[bytes, Mapping[str, str]]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for keys, args in upsert_calls(self.prefix, profiles):
            await self._script(keys=keys, args=args, client=pipe)
        results = await pipe.execute()
        return sum(int(r) for r in results)

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


#: One step of the value scan, run inside Redis: SCAN one cursor step over the profile
#: keys and return the next cursor with, for every profile found whose first field
#: (ARGV[4]) is set, the fields ARGV[4..] in order (missing ones as ""). Why a script:
#: reading the values with a pipelined HGET per key cost the worker's event loop
#: 14-18 µs of Python per profile (redis-py packs every command in Python): 1.4-1.8 s
#: of CPU per refresh for 100,000 profiles, ~15 s a minute for a million. The script
#: leaves one call per step and a reply that hiredis parses in C (0.02-0.04 s for the
#: AUM alone). It reads keys it was not handed (they come from SCAN), which a
#: standalone Redis allows; SCAN's guarantee holds as before (every profile present for
#: the whole scan is read at least once).
_VALUE_SCAN_LUA = """
local step = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local values = {}
for _, key in ipairs(step[2]) do
  local first = redis.call('HGET', key, ARGV[4])
  if first and first ~= '' then
    values[#values + 1] = first
    for i = 5, #ARGV do
      values[#values + 1] = redis.call('HGET', key, ARGV[i]) or ''
    end
  end
end
return {step[1], values}
"""


async def profile_values(client: Any, prefix: str, fields: tuple[str, ...]) -> list[list[str]]:
    """``fields`` of every profile under ``prefix`` whose first field is set, as text
    ("" where a later field is missing). One SCAN step at a time inside Redis
    (``_VALUE_SCAN_LUA``): the worker's Pareto gauges read AUM, contribution and tier."""
    scan_step = client.register_script(_VALUE_SCAN_LUA)
    match = profile_key_pattern(prefix)
    width = len(fields)
    rows: list[list[str]] = []
    cursor: bytes | int = 0
    while True:
        cursor, raw = await scan_step(keys=[], args=[cursor, match, _SCAN_COUNT, *fields])
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
#: PING (health), HGETALL (profile reads, tier counts), EVALSHA + SCRIPT LOAD/EXISTS
#: (the versioned upsert script, loaded by redis-py's pipeline), and HGET/HSET/HINCRBY
#: (called inside that script; Redis checks script calls against the user's ACL too);
#: EXISTS + SET on ``<prefix>synced:<partition>`` markers (detecting a Redis that lost
#: its data: the worker's resync) and SCAN + HGET for the Pareto gauges (every 60 s).
REDIS_ACL_COMMANDS: tuple[str, ...] = (
    "ping",
    "hgetall",
    "evalsha",
    "script|load",
    "script|exists",
    "hget",
    "hset",
    "hincrby",
    "exists",
    "set",
    "scan",
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
