"""What the poison-pill boundary costs on the hot path, measured side by side.

The boundary (streams/pipeline/processor.py, issue 18) wraps every record's decode and
apply in a ``try``, checks the key's size, keeps a per-batch list of every
application (what a failed record's customer is rebuilt from), and records for each
event where its decisions start -- no copy of any state. This runs the same simulated
bank through the pipeline *before* the boundary (the processor of the commit given by
``--before``, loaded from git) and *with* it, in interleaved rounds on the same
messages, as the worker does: batches of 1,000, the decoded-state cache on, states
written to a dict store after each batch. It reports CPU microseconds per event for
decoding and for applying, each round and the medians, and the ratio.

    python -m bench.boundary [--customers 2000] [--events 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

from state.rules import load_rules
from streams.pipeline import processor as current
from streams.pipeline.state_cache import StateCache
from streams.tools.simulator import SimConfig, Simulator
from streams.worker.gc_tuning import tune_gc

ROOT = Path(__file__).resolve().parents[1]


def load_before(commit: str) -> ModuleType:
    """The pipeline's processor module as it was at ``commit``."""
    source = subprocess.run(
        ["git", "show", f"{commit}:streams/pipeline/processor.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "processor_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("processor_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["processor_before"] = module
    spec.loader.exec_module(module)
    return module


def run(module: ModuleType, messages: list[Any], batch: int) -> tuple[float, float]:
    """CPU seconds spent decoding and applying ``messages`` in batches."""
    rules = load_rules()
    proc = module.BatchProcessor(rules, cache=StateCache(50_000))
    store: dict[tuple[int, bytes], bytes] = {}
    decode_s = apply_s = 0.0
    raw = [module.RawMessage(*m) for m in messages]
    gc.collect()
    for start in range(0, len(raw), batch):
        chunk = raw[start : start + batch]
        t0 = time.process_time()
        decoded = [proc.decode(m) for m in chunk]
        t1 = time.process_time()
        result = proc.apply_ordered(
            module.merge_by_event_time(decoded), lambda p, k: store.get((p, k))
        )
        t2 = time.process_time()
        for partition, key, value in result.states:
            store[(partition, key)] = value
        decode_s += t1 - t0
        apply_s += t2 - t1
    return decode_s, apply_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--before", default="39311f0", help="commit of the processor before")
    args = ap.parse_args()
    tune_gc()  # as the worker runs
    before = load_before(args.before)
    sim = Simulator(SimConfig(customers=args.customers, seed=18))
    messages = [
        (r.topic, zlib.crc32(r.key) % 8, i, r.key, r.value, 1_700_000_000_000)
        for i, r in enumerate(sim.records(limit=args.events))
    ]
    n = len(messages)
    rows: dict[str, list[tuple[float, float]]] = {"before": [], "boundary": []}
    for r in range(args.rounds):
        pair = (("before", before), ("boundary", current))
        for name, module in pair if r % 2 == 0 else pair[::-1]:
            d, a = run(module, messages, args.batch)
            rows[name].append((d, a))
            print(
                f"round {r + 1} {name:>8}: decode {d / n * 1e6:6.2f} us/event, "
                f"apply {a / n * 1e6:6.2f} us/event, total {(d + a) / n * 1e6:6.2f}",
                flush=True,
            )
    med = {
        name: tuple(statistics.median(x[i] for x in v) / n * 1e6 for i in range(2))
        for name, v in rows.items()
    }
    for name, (d, a) in med.items():
        print(f"median {name:>8}: decode {d:6.2f}, apply {a:6.2f}, total {d + a:6.2f} us/event")
    b, w = sum(med["before"]), sum(med["boundary"])
    print(f"boundary / before: {w / b:.3f} ({w - b:+.2f} us/event) on {n} events")


if __name__ == "__main__":
    main()
