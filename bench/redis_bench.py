"""Redis profile write throughput through the worker's own sink.

``RedisProfileSink.write`` (the Lua version-checked upsert, pipelined) in batches of
1000 profiles, the worker's batch size. Profiles come from ``state.profile``
applied to a typical state, one per distinct customer id, so every write is a real
insert that also moves the tier counts.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from state.customer import CustomerState
from state.profile import profile_fields
from state.rules import load_rules
from streams.metrics import Metrics
from streams.redis_sink import RedisProfileSink, connect


@dataclass
class RedisThroughput:
    profiles: int
    batch: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.profiles / self.seconds if self.seconds > 0 else 0.0


def measure_redis(
    redis_url: str, prefix: str, template: bytes, profiles: int, batch: int = 1000
) -> RedisThroughput:
    rules = load_rules(None)
    base = profile_fields(CustomerState.from_bytes(template), rules)
    batches = []
    for start in range(0, profiles, batch):
        b: dict[bytes, dict[str, str]] = {}
        for i in range(start, min(start + batch, profiles)):
            cid = f"R{i:07d}"
            b[cid.encode()] = {**base, "customer_id": cid}
        batches.append(b)

    async def go() -> float:
        client = connect(redis_url)
        sink = RedisProfileSink(client, prefix, Metrics())
        try:
            await sink.write(batches[0])  # loads the script; not timed
            t0 = time.perf_counter()
            for b in batches[1:]:
                await sink.write(b)
            return time.perf_counter() - t0
        finally:
            await client.aclose()

    seconds = asyncio.run(go())
    return RedisThroughput(profiles - len(batches[0]), batch, seconds)
