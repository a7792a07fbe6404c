"""``python -m bench.history``: the core's cost per event against the customers' age.

Why: a bank's customers have months of history from its first day in production, and
the benchmark's own data (bench/data.py) is a bank a few days old. This measures the
pure core -- ``BatchProcessor`` with a plain dict store and no state cache, fed by the
project's simulator -- on banks whose customers hold fresh / 30 / 90 / 180 days of
history, and reports, per history length:

* **CPU per event of a live phase, cold**: the events that follow the bank's cut,
  in batches in which no customer appears twice, so every event's state is read from
  bytes, decoded, applied, encoded and profiled -- what a worker pays when its
  customers outnumber its state cache, i.e. in every real bank. CPU is
  ``time.process_time`` over the live phase after a warm-up, with the worker's
  garbage-collector settings. Measured twice: as fed to a worker (raw messages:
  input decoding and the event-time merge included), and with the input decoded
  beforehand (the state, the rules, the profile and the batch bookkeeping only).
* **where it goes**: mean µs of the steps measured one at a time on the bank's
  states (input decode, ``CustomerState.from_bytes``, ``to_bytes``,
  ``profile_fields``); the rest of the per-event figure is ``apply`` and batch
  bookkeeping.
* **state size**: serialized (mean / p95 / max over the bank's states at the cut);
  in memory, decoded: tracemalloc's count of what ``from_bytes`` leaves allocated
  for a batch of states, divided by their number, and the same after one live event
  has been applied to each; and what the worker's state cache holds per customer:
  the memory freed by clearing a ``StateCache`` that a ``BatchProcessor`` filled
  from the first 5,000 live events; and on disk, the bank's states in a RocksDB
  (rocksdict, flushed and compacted: SST bytes per customer).

Banks are built once, offline, through the real core (one simulator pass, the store
snapshotted at each cut together with the next live events) and cached on disk under
``~/.cache/tierstream/bench`` (``TIERSTREAM_BENCH_CACHE``), keyed by the scale and a
hash of the core's source, so a change to the core rebuilds them. The building pass
also reports its own CPU per event per stretch of history (batches of 2,000, where a
customer's second event in a batch is served from the batch: the issue's figure).

``--versus REF`` measures the code of a git ref (``git archive`` of its ``state``,
``schemas`` and ``streams``, nothing in the repository is changed) side by side with
the working tree: each measurement is a process of its own, interleaved by history
length and round, and the table shows both. It reports figures; it never passes or
fails on them.

    python -m bench.history --quick                    # 1,000 customers
    python -m bench.history --versus 7df4541           # before/after, 4,000 customers
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.bank import BankSpec, ensure_banks, partition_of, read_states, shell_modules
from bench.data import read_records

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
LATEST = REPO_ROOT / "bench" / "LATEST-history.md"
BATCH_MAX = 1000  # the worker's --batch-max default


@dataclass(frozen=True)
class Scale:
    customers: int
    live_events: int
    days: tuple[int, ...]
    seed: int
    warmup: int

    def tag(self) -> str:
        return f"c{self.customers}-k{self.live_events}-s{self.seed}"


QUICK = Scale(customers=1_000, live_events=20_000, days=(0, 30, 90, 180), seed=42, warmup=2_000)
FULL = Scale(customers=4_000, live_events=60_000, days=(0, 30, 90, 180), seed=42, warmup=5_000)


# ------------------------------------------------------------------ banks


def bank_spec(scale: Scale) -> BankSpec:
    return BankSpec(scale.customers, scale.seed, scale.days, scale.live_events)


@dataclass
class Bank:
    """A bank's stored states at a cut and the live events that follow it."""

    days: int
    info: dict[str, Any]
    states: dict[bytes, bytes]
    live: list[tuple[str, bytes, bytes, int]]  # topic, key, value, ts


def read_bank(info_path: Path, live: int | None = None) -> Bank:
    """A cut built by bench/bank.py, named by its ``.json`` file (with at most ``live``
    of its live records)."""
    info = json.loads(info_path.read_text())
    states = dict(read_states(info_path.with_suffix(".states")))
    records = read_records(info_path.with_suffix(".records"), 0, live)
    live_records = [(r.topic, r.key, r.value, r.ts_ms) for r in records]
    return Bank(int(info["days"]), info, states, live_records)


def build(scale: Scale) -> dict[int, Path]:
    """Every bank of ``scale`` (built once, cached: bench/bank.py); their ``.json`` paths."""
    files = ensure_banks(bank_spec(scale))
    return {d: f.states.with_suffix(".json") for d, f in files.items()}


# ------------------------------------------------------------------ measuring


def cold_batches(msgs: list[Any]) -> Iterator[list[Any]]:
    """Consecutive batches of at most BATCH_MAX in which no customer appears twice
    (cut where the next event's customer is already in the batch): every event's state
    is then loaded from the store and decoded, none is served from the batch."""
    batch: list[Any] = []
    keys: set[bytes] = set()
    for m in msgs:
        if m.key in keys or len(batch) >= BATCH_MAX:
            yield batch
            batch, keys = [], set()
        batch.append(m)
        keys.add(m.key)
    if batch:
        yield batch


def _percentile(xs: list[int], q: float) -> int:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _mean_us(fn: Any, items: list[Any], repeat: int = 3) -> float:
    """Mean µs of ``fn(item)`` over ``items``, the best of ``repeat`` passes."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for it in items:
            fn(it)
        best = min(best, time.process_time() - t0)
    return best / max(len(items), 1) * 1e6


def _traced_per_item(make: Any, n: int) -> float:
    """Bytes tracemalloc sees still allocated after ``make()``, per item, over n items."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = make()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / n


def _cache_entry_bytes(rules: Any, msgs: list[Any], states: dict[bytes, bytes]) -> float:
    """What the worker's state cache holds per customer: run ``msgs`` through a
    ``BatchProcessor`` with a ``StateCache`` large enough for every customer, then
    clear the cache; the memory that frees (tracemalloc), per entry. The same events
    run once before without a cache, so the memos they fill are not counted."""
    processor, _simulator, cache = shell_modules()
    BatchProcessor, StateCache = processor.BatchProcessor, cache.StateCache

    def run(proc: Any, store: dict[bytes, bytes]) -> None:
        for b in cold_batches(msgs):
            res = proc.process(b, lambda _p, k: store.get(k))
            for _p, k, v in res.states:
                store[k] = v

    run(BatchProcessor(rules), dict(states))  # memos filled, nothing cached
    cache = StateCache(len(states) + 1)
    gc.collect()
    tracemalloc.start()
    run(BatchProcessor(rules, cache=cache), dict(states))
    gc.collect()
    full = tracemalloc.get_traced_memory()[0]
    n = len(cache)
    cache.clear()
    gc.collect()
    freed = full - tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return freed / max(n, 1)


def _rocksdb_bytes(states: dict[bytes, bytes]) -> float:
    """On-disk size per customer of the states in a RocksDB (rocksdict, the worker's
    store; its default snappy compression), flushed and compacted: SST files only."""
    from rocksdict import Rdict

    with tempfile.TemporaryDirectory(prefix="tierstream-history-rocks-") as d:
        db = Rdict(d)
        for k, v in states.items():
            db[k] = v
        db.flush()
        db.compact_range(None, None)
        db.close()
        sst = sum(p.stat().st_size for p in Path(d).glob("*.sst"))
    return sst / max(len(states), 1)


def measure(path: Path, warmup: int, live_events: int | None = None) -> dict[str, Any]:
    """One bank, one process: the live phase's CPU per event, the breakdown, sizes."""
    from state import lifetime
    from state.core import apply
    from state.customer import CustomerState
    from state.profile import profile_fields
    from state.rules import load_rules

    try:
        from streams.worker.gc_tuning import tune_gc
    except ModuleNotFoundError:  # a --versus ref from before the streams/ layout
        tune_gc = importlib.import_module("streams.gc_tuning").tune_gc

    processor, _simulator, _cache = shell_modules()
    BatchProcessor, RawMessage = processor.BatchProcessor, processor.RawMessage
    merge_by_event_time = processor.merge_by_event_time

    bank = read_bank(path, live_events)
    rules = load_rules()
    store = dict(bank.states)
    msgs = [
        RawMessage(t, partition_of(k), i, k, v, ts) for i, (t, k, v, ts) in enumerate(bank.live)
    ]
    sizes = [len(v) for v in store.values()]
    sample_keys = sorted(store)[:2000]
    sample = [store[k] for k in sample_keys]

    # --- sizes in memory: decoded, and decoded + one live event applied
    proc = BatchProcessor(rules)
    first_event: dict[bytes, Any] = {}
    for m in msgs:
        if m.key in store and m.key not in first_event:
            d = proc.decode(m)
            if d.event is not None:
                first_event[m.key] = d.event
    with_event = [k for k in sample_keys if k in first_event]

    def decoded() -> list[Any]:
        return [CustomerState.from_bytes(b) for b in sample]

    def after_event() -> list[Any]:
        out = []
        for k in with_event:
            st = CustomerState.from_bytes(store[k])
            apply(st, first_event[k], rules)
            out.append(st)
        return out

    after_event()  # warm the memos (format_ts, CLV, ...) so they are not counted
    mem_decoded = _traced_per_item(decoded, len(sample))
    mem_after = _traced_per_item(after_event, max(len(with_event), 1))

    cached = _cache_entry_bytes(rules, msgs[:5_000], bank.states)

    # --- the steps one at a time
    states = [CustomerState.from_bytes(b) for b in sample]
    steps = {
        "input_decode_us": _mean_us(lambda m: proc.decode(m), msgs[:5000]),
        "from_bytes_us": _mean_us(CustomerState.from_bytes, sample),
        "to_bytes_us": _mean_us(lambda s: s.to_bytes(), states),
        "profile_fields_us": _mean_us(lambda s: profile_fields(s, rules), states),
    }
    del states

    # --- the live phase, cold: as fed to a worker, then with the input pre-decoded
    batches = list(cold_batches(msgs))
    tuned = False

    def live(pre_decoded: bool) -> tuple[float, int, int, int]:
        """(CPU s, events, batches, decisions) after the warm-up."""
        nonlocal tuned
        store = dict(bank.states)
        proc = BatchProcessor(rules)

        def load(_p: int, k: bytes) -> bytes | None:
            return store.get(k)

        def keep(res: Any) -> Any:
            for _p, k, v in res.states:
                store[k] = v
            return res

        i = warm_n = 0
        while i < len(batches) and warm_n < warmup:
            keep(proc.process(batches[i], load))
            warm_n += len(batches[i])
            i += 1
        timed: list[list[Any]] = batches[i:]
        if pre_decoded:
            timed = [[proc.decode(m) for m in b] for b in timed]
        if not tuned:
            tune_gc()
            tuned = True
        decisions = 0
        t0 = time.process_time()
        if pre_decoded:
            for b in timed:
                decisions += len(keep(proc.apply_ordered(merge_by_event_time(b), load)).decisions)
        else:
            for b in timed:
                decisions += len(keep(proc.process(b, load)).decisions)
        cpu = time.process_time() - t0
        return cpu, sum(len(b) for b in timed), len(timed), decisions

    cpu, n_events, n_batches, decisions = live(pre_decoded=False)
    memo = getattr(lifetime, "_purchases_memo", None)
    if memo is not None:  # the second pass must not find the first pass's CLVs
        memo.cache_clear()
    cpu_core, _n, _b, _d = live(pre_decoded=True)
    gc.unfreeze()
    return {
        "days": bank.days,
        "customers": len(bank.states),
        "events": n_events,
        "batches": n_batches,
        "decisions": decisions,
        "cpu_us_per_event": cpu / n_events * 1e6,
        "cpu_us_per_event_predecoded": cpu_core / n_events * 1e6,
        "state_bytes": {
            "mean": statistics.mean(sizes),
            "p95": _percentile(sizes, 0.95),
            "max": max(sizes),
        },
        "decoded_bytes": mem_decoded,
        "decoded_after_event_bytes": mem_after,
        "cache_entry_bytes": cached,
        "rocksdb_bytes": _rocksdb_bytes(bank.states),
        **steps,
        "build": bank.info,
    }


# ------------------------------------------------------------------ driving


@dataclass
class Code:
    """A version of the code: the working tree, or a git ref extracted to a folder."""

    label: str
    root: Path  # where ``python -m bench.history`` runs (cwd; first on sys.path)
    ref: str = ""


def extract_ref(ref: str, into: Path) -> Code:
    """``state``, ``schemas`` and ``streams`` of ``ref`` with this tree's ``bench``."""
    rev = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", ref],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    root = into / rev
    root.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(REPO_ROOT),
            "archive",
            "--format=tar",
            rev,
            "state",
            "schemas",
            "streams",
        ],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    (root / "bench").symlink_to(REPO_ROOT / "bench")
    return Code(label=f"{ref} ({rev})", root=root, ref=rev)


def _child(code: Code, args: list[str]) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(code.root)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.history", *args],
        cwd=code.root,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    last = proc.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last)
    return result


@dataclass
class Results:
    scale: Scale
    codes: list[str]
    #: code label -> days -> list of per-round measurements
    runs: dict[str, dict[int, list[dict[str, Any]]]] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    started: str = ""

    def median(self, code: str, days: int, key: str) -> float:
        return float(statistics.median(r[key] for r in self.runs[code][days]))

    def spread(self, code: str, days: int, key: str) -> tuple[float, float]:
        xs = [r[key] for r in self.runs[code][days]]
        return min(xs), max(xs)

    def render(self) -> str:
        s = self.scale
        lines = [
            "# Core cost per event against the customers' history",
            "",
            f"Run at {self.started}: `python -m bench.history {' '.join(sys.argv[1:])}`",
            "",
            f"Machine: {self.machine.get('cpus')} CPUs ({self.machine.get('cpu_model')}), "
            f"load average at start {self.machine.get('load_avg_at_start')}, "
            f"Python {self.machine.get('python')}.",
            "",
            f"Banks: {s.customers:,} simulated customers (seed {s.seed}), cut after "
            f"{', '.join(str(d) for d in s.days)} days of history; live phase "
            f"{s.live_events:,} events per bank ({s.warmup:,}-event warm-up untimed), "
            "batches in which no customer appears twice (every state read from bytes), "
            "`BatchProcessor` with a dict store and no state cache; median of "
            f"{len(next(iter(next(iter(self.runs.values())).values())))} rounds, "
            "range in brackets.",
            "",
            "| code | history | CPU µs/event | × fresh | pre-decoded µs/event | input decode µs "
            "| from_bytes µs "
            "| to_bytes µs | profile µs | state B mean / p95 / max | decoded B | "
            "after 1 event B | in the cache B | RocksDB B |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: |",
        ]
        for code in self.codes:
            fresh = self.median(code, min(s.days), "cpu_us_per_event")
            for d in s.days:
                runs = self.runs[code][d]
                r0 = runs[0]
                cpu = self.median(code, d, "cpu_us_per_event")
                lo, hi = self.spread(code, d, "cpu_us_per_event")
                sb = r0["state_bytes"]
                lines.append(
                    f"| {code} | {d} d | {cpu:.1f} [{lo:.1f}–{hi:.1f}] | {cpu / fresh:.2f} "
                    f"| {self.median(code, d, 'cpu_us_per_event_predecoded'):.1f} "
                    f"| {self.median(code, d, 'input_decode_us'):.1f} "
                    f"| {self.median(code, d, 'from_bytes_us'):.1f} "
                    f"| {self.median(code, d, 'to_bytes_us'):.1f} "
                    f"| {self.median(code, d, 'profile_fields_us'):.1f} "
                    f"| {sb['mean']:,.0f} / {sb['p95']:,} / {sb['max']:,} "
                    f"| {r0['decoded_bytes']:,.0f} | {r0['decoded_after_event_bytes']:,.0f} "
                    f"| {r0['cache_entry_bytes']:,.0f} | {r0['rocksdb_bytes']:,.0f} |"
                )
        lines += [
            "",
            "Building the banks (batches of 2,000, a customer's later events in a batch "
            "served from the batch), CPU µs per event per stretch of history:",
            "",
        ]
        for code in self.codes:
            info = self.runs[code][max(s.days)][0]["build"]
            parts = [
                f"{x['from_days']}–{x['to_days']} d: {x['cpu_us_per_event']:.0f}"
                for x in info["build_stretches"]
                if x["from_days"] >= 0
            ]
            lines.append(
                f"* {code}: {'; '.join(parts)} "
                f"({info['build_records']:,} records, built in {info['build_seconds']} s)"
            )
        return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 customers, 20,000 live events")
    ap.add_argument("--customers", type=int, help="simulated customers")
    ap.add_argument("--live-events", type=int, help="live events measured per bank")
    ap.add_argument("--days", help="history lengths, comma-separated (default 0,30,90,180)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--rounds", type=int, default=3, help="measurements per bank and code")
    ap.add_argument("--versus", help="also measure this git ref's code, side by side")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON too")
    # internal: one measurement or one build, in a process of its own
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    base = QUICK if args.quick else FULL
    live = args.live_events or base.live_events
    args.scale = Scale(
        customers=args.customers or base.customers,
        live_events=live,
        days=tuple(int(x) for x in args.days.split(",")) if args.days else base.days,
        seed=args.seed,
        warmup=min(base.warmup, live // 10),
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale: Scale = args.scale
    if args.measure is not None:
        print(json.dumps(measure(args.measure, scale.warmup, scale.live_events)))
        return 0
    if args.build_only:
        paths = build(scale)
        print(json.dumps({str(d): str(p) for d, p in paths.items()}))
        return 0

    from bench.common import machine

    res = Results(scale=scale, codes=[], machine=machine(), started=time.strftime("%F %T %Z"))
    with tempfile.TemporaryDirectory(prefix="tierstream-history-") as tmp:
        codes = [Code(label="this tree", root=REPO_ROOT)]
        if args.versus:
            codes.insert(0, extract_ref(args.versus, Path(tmp)))
        scale_args = [
            f"--customers={scale.customers}",
            f"--live-events={scale.live_events}",
            f"--days={','.join(map(str, scale.days))}",
            f"--seed={scale.seed}",
        ]
        banks: dict[str, dict[int, Path]] = {}
        for code in codes:
            print(f"banks for {code.label}:", flush=True)
            out = _child(code, [*scale_args, "--build-only"])
            banks[code.label] = {int(d): Path(p) for d, p in out.items()}
            res.runs[code.label] = {d: [] for d in scale.days}
            res.codes.append(code.label)
        for r in range(args.rounds):
            for d in scale.days:
                order = codes if r % 2 == 0 else codes[::-1]
                for code in order:
                    m = _child(code, [*scale_args, f"--measure={banks[code.label][d]}"])
                    res.runs[code.label][d].append(m)
                    print(
                        f"  round {r + 1}, {d:>3} days, {code.label}: "
                        f"{m['cpu_us_per_event']:.1f} µs/event, state "
                        f"{m['state_bytes']['mean']:,.0f} B, decoded {m['decoded_bytes']:,.0f} B",
                        flush=True,
                    )
    text = res.render()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    md = RESULTS / f"history-{stamp}.md"
    md.write_text(text)
    LATEST.write_text(text)
    doc = {
        "scale": asdict(scale),
        "machine": res.machine,
        "started": res.started,
        "runs": {c: {str(d): rs for d, rs in v.items()} for c, v in res.runs.items()},
    }
    js = args.json or RESULTS / f"history-{stamp}.json"
    js.write_text(json.dumps(doc, indent=1))
    print()
    print(text)
    print(f"written: {md}, {js}, {LATEST}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
