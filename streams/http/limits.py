"""Abuse limits of the HTTP API: rate and concurrency per client and per token.

Why: one client must not be able to slow tiering down (the web server shares the
worker's event loop and CPU), flood the audit topic, or guess tokens at leisure; one
leaked token must not read the whole bank in an afternoon. So every request passes,
in this order (``streams/http/views.py``):

1. the **client** (its network address): at most ``client_concurrency`` requests in
   flight and ``client_rate`` per second (a token bucket, bursts of twice that);
2. its **failed authentications**: at most ``auth_failures_per_min`` 401s per
   minute; beyond that, every request of that client is refused until the bucket
   refills (slows token guessing down to a crawl);
3. the **token**: at most ``token_concurrency`` in flight and ``token_rate`` per
   second, whichever client presents it;
4. the token's **daily read quota** (counted in Redis, so it holds across workers;
   streams/redis_sink.py ``count_read``).

A refusal is a 429 with ``Retry-After`` (whole seconds, at least 1). Refusals cost no
Redis or Kafka round trip: they are summed in memory and audited once per client and
interval (``streams/http/audit.py`` ``DenialSummaries``).

State is bounded: at most ``max_clients`` client entries; when full, new clients
share one overflow entry (so rotating addresses buys an attacker nothing but a
shared, already-exhausted bucket), and idle entries are swept (``sweep``). Behind a
reverse proxy every request has the proxy's address: the per-client limits then act
as a global limit (docs/security.md). Time is ``time.monotonic``, passed in so the
tests control it.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Final

#: The key every client beyond ``max_clients`` shares.
OVERFLOW: Final = "*overflow*"
#: A refused request is answered after min(Retry-After, this) seconds (``Tarpit``).
HOLD_MAX_S: Final = 2.0
#: Refused requests held at once, at most; beyond, they are answered at once.
HOLD_CAPACITY: Final = 1000


@dataclass
class _Bucket:
    """A token bucket: ``rate`` per second, at most ``burst`` saved up."""

    tokens: float
    stamp: float

    def take(self, now: float, rate: float, burst: float) -> float:
        """Take one; 0.0 if granted, else the seconds until one is available."""
        self.tokens = min(burst, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate if rate > 0 else math.inf

    def peek(self, now: float, rate: float, burst: float) -> float:
        """Seconds until one is available (0.0 now), without taking it."""
        tokens = min(burst, self.tokens + (now - self.stamp) * rate)
        return 0.0 if tokens >= 1.0 else ((1.0 - tokens) / rate if rate > 0 else math.inf)

    def full(self, now: float, rate: float, burst: float) -> bool:
        return self.tokens + (now - self.stamp) * rate >= burst


@dataclass(frozen=True)
class LimitConfig:
    """The limits (validated by ``streams.http.access.WebSecurity``)."""

    client_rate: float = 20.0
    client_concurrency: int = 8
    token_rate: float = 50.0
    token_concurrency: int = 16
    auth_failures_per_min: float = 30.0
    #: Profile reads per token per UTC day, across all workers; 0: no quota.
    daily_read_quota: int = 20_000
    max_clients: int = 10_000

    @property
    def client_burst(self) -> float:
        return 2 * self.client_rate

    @property
    def token_burst(self) -> float:
        return 2 * self.token_rate


class Limited(Exception):
    """A request over a limit: a 429 with ``retry_after`` seconds."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds, at least 1 (RFC 9110 delay-seconds)."""
        if not math.isfinite(self.retry_after):
            return "3600"
        return str(max(1, math.ceil(self.retry_after)))


@dataclass
class _Scope:
    """Per-key buckets and in-flight counts of one kind of key (client or token)."""

    rate: float
    burst: float
    concurrency: int
    max_keys: int
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    inflight: dict[str, int] = field(default_factory=dict)

    def key(self, raw: str) -> str:
        if raw in self.buckets or raw in self.inflight or len(self.buckets) < self.max_keys:
            return raw
        return OVERFLOW

    def admit(self, key: str, now: float, reason: str) -> None:
        if self.inflight.get(key, 0) >= self.concurrency:
            raise Limited(f"{reason}_concurrency", 1.0)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(self.burst, now)
        wait = bucket.take(now, self.rate, self.burst)
        if wait:
            raise Limited(f"{reason}_rate", wait)
        self.inflight[key] = self.inflight.get(key, 0) + 1

    def release(self, key: str) -> None:
        n = self.inflight.get(key, 0) - 1
        if n > 0:
            self.inflight[key] = n
        else:
            self.inflight.pop(key, None)

    def sweep(self, now: float) -> None:
        for key in [
            k
            for k, b in self.buckets.items()
            if k not in self.inflight and b.full(now, self.rate, self.burst)
        ]:
            del self.buckets[key]


class Admission:
    """One request's place in the limits: release it when the request is done."""

    def __init__(self, limiter: Limiter, client: str) -> None:
        self._limiter = limiter
        self.client = client
        self.token: str | None = None

    def release(self) -> None:
        self._limiter._clients.release(self.client)
        if self.token is not None:
            self._limiter._tokens.release(self.token)
            self.token = None


class Limiter:
    """The per-client, auth-failure and per-token limits of one worker."""

    def __init__(self, config: LimitConfig) -> None:
        self.config = config
        c = config
        self._clients = _Scope(c.client_rate, c.client_burst, c.client_concurrency, c.max_clients)
        self._tokens = _Scope(c.token_rate, c.token_burst, c.token_concurrency, c.max_clients)
        per_s = c.auth_failures_per_min / 60.0
        self._failures = _Scope(per_s, c.auth_failures_per_min, 1 << 30, c.max_clients)

    def admit_client(self, raw_client: str, now: float) -> Admission:
        """Steps 1 and 2; raises ``Limited``. The caller must ``release()`` the result."""
        client = self._clients.key(raw_client)
        failures = self._failures.buckets.get(self._failures.key(raw_client))
        if failures is not None:
            wait = failures.peek(now, self._failures.rate, self._failures.burst)
            if wait:
                raise Limited("auth_failures", wait)
        self._clients.admit(client, now, "client")
        return Admission(self, client)

    def admit_token(self, admission: Admission, token_name: str, now: float) -> None:
        """Step 3 for an authenticated request; raises ``Limited``."""
        key = self._tokens.key(token_name)
        self._tokens.admit(key, now, "token")
        admission.token = key

    def auth_failed(self, raw_client: str, now: float) -> None:
        """Count a failed authentication (401) against the client."""
        scope = self._failures
        key = scope.key(raw_client)
        bucket = scope.buckets.get(key)
        if bucket is None:
            bucket = scope.buckets[key] = _Bucket(scope.burst, now)
        bucket.take(now, scope.rate, scope.burst)

    def sweep(self, now: float) -> None:
        """Forget idle clients and tokens (full buckets, nothing in flight)."""
        for scope in (self._clients, self._tokens, self._failures):
            scope.sweep(now)

    @property
    def tracked(self) -> int:
        return len(self._clients.buckets) + len(self._failures.buckets)


class Tarpit:
    """Holds a refused request until its ``Retry-After`` (at most ``HOLD_MAX_S``)
    before answering the 429.

    Why: a 429 answered at once is cheap, but not free (aiohttp parses the request,
    faust dispatches it, the answer is written: ~0.1-0.3 ms of the worker's CPU), and
    a client that ignores ``Retry-After`` just sends the next one — measured, a
    16-connection flood of instant 429s ran at ~3,300 requests/s and halved tiering
    throughput (bench/http_flood.py; docs/security.md). Held, each connection of such
    a client gets one answer per second or two: its rate is bounded by its connection
    count, whatever it does. A held request costs an idle coroutine (a few KB), not CPU
    or a limiter slot. At most ``capacity`` are held; beyond, the 429 goes out at once
    and the connection is closed (``Connection: close``), so the client pays a new
    connection for the next attempt.
    """

    def __init__(self, capacity: int = HOLD_CAPACITY, max_s: float = HOLD_MAX_S) -> None:
        self.capacity = capacity
        self.max_s = max_s
        self.held = 0

    async def hold(self, retry_after_s: float) -> bool:
        """Wait before the 429 (``Retry-After`` seconds, at most ``max_s``); False
        without waiting when full: then the caller closes the connection."""
        if self.held >= self.capacity:
            return False
        self.held += 1
        try:
            await asyncio.sleep(min(retry_after_s, self.max_s))
        finally:
            self.held -= 1
        return True
