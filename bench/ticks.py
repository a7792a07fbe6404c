"""Cost of a clock tick: idle (nothing due) with a million indexed customers, and a
tick that fires 10,000 triggers. Pure in-process measurement of the shell's tick path
(``BatchProcessor.apply_ordered`` with the due index), no Kafka.

    python -m bench.ticks [--customers 1000000] [--due 10000]
"""

from __future__ import annotations

import argparse
import time

import orjson

from state.rules import load_rules
from streams.pipeline.processor import BatchProcessor
from streams.pipeline.records import RawMessage
from tests.integration.scenario import balance, profile


def _tick(partition: int, ts_ms: int) -> RawMessage:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms / 1000)) + f".{ts_ms % 1000:03d}Z"
    value = orjson.dumps(
        {"event_id": f"tick-{partition}-{ts_ms}", "partition": partition, "ts": iso}
    )
    return RawMessage("ticks", partition, 0, None, value)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--due", type=int, default=10_000)
    args = ap.parse_args()
    rules = load_rules()
    proc = BatchProcessor(rules)
    store: dict[bytes, bytes] = {}

    # customers whose birthday timer is due: real states, built through the core
    t0 = time.perf_counter()
    msgs = []
    for i in range(args.due):
        cid = f"d{i:07d}"
        msgs.append(
            RawMessage(
                "customer-profiles",
                0,
                2 * i,
                cid.encode(),
                profile(f"p{i}", cid, 1, birth="1980-03-05")[2],
            )
        )
        msgs.append(
            RawMessage(
                "balances", 0, 2 * i + 1, cid.encode(), balance(f"b{i}", cid, "A", 1, "1000.00")[2]
            )
        )
    res = proc.process(msgs, lambda p, k: None)
    for _p, k, v in res.states:
        store[k] = v
    build_s = time.perf_counter() - t0
    # the rest of the million: indexed far in the future (idle for this tick)
    far = 4_102_444_800_000  # 2100-01-01
    proc.due.rebuild(0, ((f"c{i:07d}".encode(), far + i) for i in range(args.customers - args.due)))
    print(
        f"indexed customers: {proc.due.size(0):,} "
        f"(built {args.due:,} real states in {build_s:.1f}s)"
    )

    def load(_p: int, k: bytes) -> bytes | None:
        return store.get(k)

    idle_ts = 1772300000000  # 2026-02-28, before any birthday
    n = 1000
    t0 = time.perf_counter()
    for j in range(n):
        proc.apply_ordered([proc.decode(_tick(0, idle_ts + j))], load, lambda p: ())
    idle_us = (time.perf_counter() - t0) / n * 1e6
    fire_ts = 1772726400000 + 86_400_000  # after 2026-03-05 local midnight
    t0 = time.perf_counter()
    res = proc.apply_ordered([proc.decode(_tick(0, fire_ts))], load, lambda p: ())
    fire_s = time.perf_counter() - t0
    fired = res.counts.get(("ticks", "timers_fired"), 0)
    print(f"idle tick (nothing due, {proc.due.size(0):,} indexed): {idle_us:.1f} µs")
    print(
        f"tick firing {fired:,} triggers ({len(res.decisions):,} decisions, "
        f"{len(res.states):,} states, {len(res.profiles):,} profiles): {fire_s * 1000:.0f} ms "
        f"= {fire_s / max(fired, 1) * 1e6:.0f} µs per trigger"
    )


if __name__ == "__main__":
    main()
