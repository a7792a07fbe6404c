"""tierstream's Redis Functions: the versioned profile write and the profile scan step.

Why Functions and not scripts: a client that may ``EVAL``/``EVALSHA``/``SCRIPT LOAD``
runs any Lua it likes — anyone holding the worker's Redis password could block Redis
with a loop or reach the 2025 Lua vulnerabilities (CVE-2025-49844 and related), and
Redis' own advice was to take EVAL/EVALSHA away from such users. A Function library is
loaded once with ``FUNCTION LOAD`` by an administrator (``tierstream redis
install-functions``); the worker's ACL user may only ``FCALL``/``FCALL_RO`` the named
functions below (``+fcall|<name>`` rules, streams/redis_sink.py ``redis_acl_rules``) and
no ``SCRIPT``, ``EVAL``, ``EVALSHA`` or ``FUNCTION`` command. Functions need Redis 7.0
or later.

Versions: the library's name and every function name carry ``FUNCTIONS_VERSION``
(``tierstream_v2``, ``tierstream_v2_upsert_profiles``, ...), so a new release installs
its library next to the old one and workers of both releases run side by side during a
rolling upgrade; ``install-functions --prune`` removes older versions afterwards. Bump
the version whenever a function's arguments or results change. The library also
carries the SHA-256 of its own source (``library_digest``), which ``tierstream_v2_info``
returns with the server's version: the worker checks both at start-up in one
``FCALL_RO`` that needs no other right (``check_functions``), and refuses to start when
the loaded library is missing or is not the one it was built with.

Server version: the Lua fixes of October 2025 are in Redis 6.2.20, 7.2.11, 7.4.6,
8.0.4 and 8.2.2 (and every later line); 7.0 got none upstream. Distributions backport
them without changing the version Redis reports (Debian bookworm: 5:7.0.15-1~deb12u6
and later report 7.0.15), so a build the operator knows to be patched is named in
``TIERSTREAM_REDIS_ACCEPT_VERSION`` and the warning is silenced for exactly that
reported version (``lua_fixes_missing``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from redis.exceptions import NoPermissionError, ResponseError

#: Bump when a function's arguments or results change (tests pin the source's digest).
#: Version 2 (issue 22): the AUM scan step became the profile scan step, which returns
#: the fields it is asked for (AUM, contribution and tier for the Pareto gauges).
FUNCTIONS_VERSION: Final = 2
LIBRARY: Final = f"tierstream_v{FUNCTIONS_VERSION}"
#: KEYS: n profile hashes then the tier-count hash; ARGV: each profile's fields as one
#: JSON object of strings. Returns how many profiles were written.
FN_UPSERT: Final = f"{LIBRARY}_upsert_profiles"
#: KEYS: n profile hashes then the tier-count hash. Deletes each profile and takes it
#: out of the tier counts (erasure). Returns how many existed.
FN_ERASE: Final = f"{LIBRARY}_erase_profiles"
#: ARGV: cursor, MATCH pattern, COUNT, then one or more field names. Returns {next
#: cursor, {the fields of each profile found whose first field is set, flat, in order,
#: "" for a missing one}}. Read-only.
FN_PROFILE_SCAN: Final = f"{LIBRARY}_profile_scan_step"
#: No arguments. Returns {library version, library digest, server version}. Read-only.
FN_INFO: Final = f"{LIBRARY}_info"
#: (function, called with FCALL_RO) for the ACL rules.
FUNCTIONS: Final = (
    (FN_UPSERT, False),
    (FN_ERASE, False),
    (FN_PROFILE_SCAN, True),
    (FN_INFO, True),
)

_DIGEST_MARK: Final = "@LIBRARY_DIGEST@"

#: The library. The upsert applies a profile when its version is newer than the stored
#: one, or equal with different fields; tier counts move only when a write changes the
#: tier. The erase deletes profiles and takes each out of the tier counts, once: a
#: repeated erase finds nothing and changes nothing.
#:
#: Why an equal version may overwrite: the version counts applied events, and the same
#: version decided twice means the same events were applied again -- a re-run after a
#: crash (at_least_once: Redis is written before the changelog) or an aborted
#: transaction (exactly_once: Redis is written before the commit). The re-run starts
#: from the committed state, and if some of those events became visible only later, it
#: may apply them in another event-time order than the first run did. Its profile is
#: the one the committed state agrees with, so it must win; an identical re-send is
#: still skipped (counted as stale).
#:
#: The profile scan step: one SCAN cursor step over the profile keys, returning the next
#: cursor and, for every profile found whose first asked field is set (``aum_cny`` for
#: the gauges: every profile has one), the asked fields in order. Why inside Redis:
#: reading the values with a pipelined HGET per key cost the worker's event loop
#: 14-18 µs of Python per profile (redis-py packs every command in Python): 1.4-1.8 s
#: of CPU per refresh for 100,000 profiles. One call per step leaves a reply that
#: hiredis parses in C (0.02-0.04 s). It reads keys it was not handed (they come from
#: SCAN), which a standalone Redis allows; the ACL's key pattern still applies to every
#: HGET. SCAN's guarantee holds (every profile present for the whole scan is read at
#: least once).
_LIBRARY_TEMPLATE: Final = f"""#!lua name={LIBRARY}
-- tierstream's Redis Functions, version {FUNCTIONS_VERSION}. Loaded by
-- `tierstream redis install-functions` (streams/redis_functions.py); do not edit here.
local LIBRARY_DIGEST = '{_DIGEST_MARK}'

local function upsert_profiles(keys, args)
  local written = 0
  local counts = keys[#keys]
  for i = 1, #keys - 1 do
    local key = keys[i]
    local fields = cjson.decode(args[i])
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
      local flat = {{}}
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
end

local function erase_profiles(keys, args)
  local erased = 0
  local counts = keys[#keys]
  for i = 1, #keys - 1 do
    local tier = redis.call('HGET', keys[i], 'tier')
    if redis.call('DEL', keys[i]) == 1 then
      erased = erased + 1
      if tier and tier ~= '' then redis.call('HINCRBY', counts, tier, -1) end
    end
  end
  return erased
end

local function profile_scan_step(keys, args)
  local step = redis.call('SCAN', args[1], 'MATCH', args[2], 'COUNT', args[3])
  local values = {{}}
  for _, key in ipairs(step[2]) do
    local first = redis.call('HGET', key, args[4])
    if first and first ~= '' then
      values[#values + 1] = first
      for i = 5, #args do
        values[#values + 1] = redis.call('HGET', key, args[i]) or ''
      end
    end
  end
  return {{step[1], values}}
end

local function info(keys, args)
  return {{'{FUNCTIONS_VERSION}', LIBRARY_DIGEST, redis.REDIS_VERSION}}
end

redis.register_function('{FN_UPSERT}', upsert_profiles)
redis.register_function('{FN_ERASE}', erase_profiles)
redis.register_function{{function_name='{FN_PROFILE_SCAN}', callback=profile_scan_step,
  flags={{'no-writes'}}}}
redis.register_function{{function_name='{FN_INFO}', callback=info, flags={{'no-writes'}}}}
"""


def library_digest() -> str:
    """SHA-256 of the library as this build ships it (its template, before the digest
    is written into it)."""
    return hashlib.sha256(_LIBRARY_TEMPLATE.encode("utf-8")).hexdigest()


def library_source() -> str:
    """The library as ``FUNCTION LOAD`` takes it, carrying its own digest."""
    return _LIBRARY_TEMPLATE.replace(_DIGEST_MARK, library_digest())


class RedisFunctionsError(RuntimeError):
    """The Redis server cannot run this build's functions; the message says what to do."""


INSTALL_HINT: Final = (
    "run `tierstream redis install-functions` as a Redis administrator (docs/security.md, Redis)"
)


@dataclass(frozen=True)
class ServerFunctions:
    """What ``check_functions`` found: the loaded library and the server's version."""

    library_version: int
    digest: str
    server_version: str


def parse_info(reply: Any) -> ServerFunctions:
    version, digest, server = (_text(x) for x in reply)
    return ServerFunctions(int(version), digest, server)


async def check_functions(client: Any) -> ServerFunctions:
    """This build's library is loaded, unchanged: else ``RedisFunctionsError``.

    One ``FCALL_RO`` of the info function, which the worker's ACL user may call; a
    Redis without Functions (before 7.0), without the library, or with another build
    of it is reported with what to do.
    """
    try:
        reply = await client.fcall_ro(FN_INFO, 0)
    except NoPermissionError:
        raise RedisFunctionsError(
            f"the Redis user may not FCALL_RO {FN_INFO}: give it the ACL rules of "
            "docs/security.md (streams.redis_sink.redis_acl_rules)"
        ) from None
    except ResponseError as exc:
        text = str(exc).lower()
        if "unknown command" in text:
            raise RedisFunctionsError(
                "this Redis has no Functions (FCALL): tierstream needs Redis 7.0 or later"
            ) from None
        if "function not found" in text:
            raise RedisFunctionsError(
                f"Redis has no function library {LIBRARY} (a new Redis, one restarted "
                f"empty, or an older tierstream's library only): {INSTALL_HINT}"
            ) from None
        raise
    found = parse_info(reply)
    if found.library_version != FUNCTIONS_VERSION or found.digest != library_digest():
        raise RedisFunctionsError(
            f"the loaded {LIBRARY} library is not this build's (digest {found.digest[:12]}, "
            f"expected {library_digest()[:12]}): {INSTALL_HINT}"
        )
    return found


async def install_functions(client: Any, prune: bool = False) -> list[str]:
    """Load this build's library (``FUNCTION LOAD REPLACE``: idempotent); with ``prune``
    delete every older ``tierstream_v<N>`` library. Returns the libraries deleted.

    Needs an administrator's rights (``FUNCTION LOAD``/``DELETE``/``LIST``); the worker's
    ACL user has none of them.
    """
    await client.function_load(library_source(), replace=True)
    removed: list[str] = []
    if prune:
        for lib in await client.function_list():
            name = _text(_field(lib, "library_name"))
            m = re.fullmatch(r"tierstream_v(\d+)", name)
            if m and int(m.group(1)) < FUNCTIONS_VERSION:
                await client.function_delete(name)
                removed.append(name)
    return removed


async def server_check(
    client: Any, accepted: tuple[str, ...] = ()
) -> tuple[ServerFunctions, str | None]:
    """The worker's start-up check: the library (``check_functions``, raises) and a
    warning when the server may lack the 2025 Lua fixes (None when it has them)."""
    found = await check_functions(client)
    return found, lua_fixes_missing(found.server_version, accepted)


def is_missing_function(exc: BaseException) -> bool:
    """A write failed because Redis lacks the library (restarted empty, never installed)."""
    return isinstance(exc, ResponseError) and "function not found" in str(exc).lower()


# -- the server's version and the 2025 Lua fixes ------------------------------------------

#: The first release of each line with the Lua fixes of October 2025 (CVE-2025-49844,
#: CVE-2025-46817, CVE-2025-46818, CVE-2025-46819). Lines after the newest listed one
#: came out with them; lines not listed before it (7.0, ...) never got them upstream.
LUA_FIXED: Final = {
    (6, 2): (6, 2, 20),
    (7, 2): (7, 2, 11),
    (7, 4): (7, 4, 6),
    (8, 0): (8, 0, 4),
    (8, 2): (8, 2, 2),
}


def _version_tuple(version: str) -> tuple[int, int, int] | None:
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)", version.strip())
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def lua_fixes_missing(version: str, accepted: tuple[str, ...] = ()) -> str | None:
    """Why ``version`` may lack the 2025 Lua fixes, or None when it has them (or the
    operator vouched for exactly this reported version)."""
    if version.strip() in accepted:
        return None
    v = _version_tuple(version)
    if v is None:
        return f"Redis reports an unrecognised version {version!r}"
    newest_line = max(LUA_FIXED)
    fixed = LUA_FIXED.get(v[:2])
    if fixed is not None and v >= fixed:
        return None
    if fixed is None and v[:2] > newest_line:
        return None
    need = fixed if fixed is not None else None
    wanted = ", ".join(".".join(map(str, f)) for f in LUA_FIXED.values())
    detail = f"upgrade to {'.'.join(map(str, need))} or later" if need else f"upgrade ({wanted})"
    return (
        f"Redis {version} may lack the 2025 Lua fixes (CVE-2025-49844 and related): {detail}; "
        "a distribution build with the fixes backported (e.g. Debian bookworm "
        "5:7.0.15-1~deb12u6 or later) can be accepted with "
        f"TIERSTREAM_REDIS_ACCEPT_VERSION={version}"
    )


def _field(entry: Any, name: str) -> Any:
    """A field of a FUNCTION LIST entry (a dict under RESP3, a flat list under RESP2)."""
    if isinstance(entry, dict):
        return entry.get(name) or entry.get(name.encode())
    items = list(entry)
    for k, v in zip(items[::2], items[1::2], strict=True):
        if _text(k) == name:
            return v
    return None


def _text(b: bytes | str | int) -> str:
    return b.decode() if isinstance(b, bytes) else str(b)
