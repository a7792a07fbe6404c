"""Simulated banks with history: the customers' states at a cut, and the records after it.

Why: a bank's customers have months of history from its first day in production, and
the core's cost per event depends on it (issue 19). Replaying months of events in
every benchmark run would take an hour; so a bank is built once, offline, through the
real core, and cached on disk:

* one pass of ``streams.tools.simulator`` (the same simulated bank for the same
  ``customers`` and ``seed``) is decoded and applied with ``state.core.apply`` in
  batches of ``BUILD_BATCH`` records merged by event time, as ``BatchProcessor`` does;
* at each cut (``days`` after the end of onboarding) every customer's state is
  serialized (``CustomerState.to_bytes``) into ``<name>.states``;
* the ``live`` records that follow the cut go, as they are, into ``<name>.records``
  (bench/data.py's format): the events a system measured on top of those states has
  not seen yet.

The build keeps the states decoded between batches instead of serializing them after
every batch: ``apply`` mutates a state in place, and a state survives ``to_bytes`` /
``from_bytes`` exactly (tests/state: golden digests and round trips), so the states are
byte for byte what ``BatchProcessor`` with a store would leave
(tests/bench/test_bank.py checks it) at about half the cost.

The cache key (file names under ``~/.cache/tierstream/bench``,
``TIERSTREAM_BENCH_CACHE``) is the bank's parameters plus a hash of what the states
mean: the simulator's source, the default rules, the state format version and this
module's ``BUILD_VERSION``. A change of the core that keeps the format reuses the
states, as a bank's changelog does when a worker is upgraded in place.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from bench.data import CACHE_DIR, RecordWriter

#: Bumped when the way banks are built changes (part of the cache key).
BUILD_VERSION = 1
#: Records per build batch (merged by event time within it, like a worker's batch).
BUILD_BATCH = 2000
#: Partitions the build's event-time merge keys on (each (topic, partition) keeps its
#: order; which partition a customer lands in does not change its state).
PARTITIONS = 8
_STATES_MAGIC = b"TSSTATE1"
_PAIR = struct.Struct("<II")  # key length, value length


@dataclass(frozen=True)
class BankSpec:
    """A simulated bank: ``customers`` (seed ``seed``) cut after each of ``days`` days
    of history, with the ``live`` records that follow each cut."""

    customers: int
    seed: int
    days: tuple[int, ...]
    live: int

    def __post_init__(self) -> None:
        if self.customers < 1 or self.live < 1 or not self.days:
            raise ValueError(f"a bank needs customers, live records and cuts: {self}")
        if any(d < 0 for d in self.days):
            raise ValueError(f"cuts are days after onboarding (>= 0): {self.days}")


@dataclass(frozen=True)
class BankFiles:
    """One cut of a bank on disk."""

    days: int
    states: Path  # length-prefixed (key, CustomerState bytes) pairs
    records: Path  # bench/data.py's record file: the live records after the cut
    info: dict[str, Any]

    @property
    def customers(self) -> int:
        return int(self.info["customers_at_cut"])


# ------------------------------------------------------------------ code identity


def shell_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """The batch processor, simulator and state cache modules of the code imported.

    ``bench.history --versus REF`` imports another ref's tree, and refs before the
    streams/ layout of 2026-12-07 (issue 20) kept them at the top of ``streams``.
    """
    try:
        from streams.pipeline import processor, state_cache
        from streams.tools import simulator
    except ModuleNotFoundError:
        processor = importlib.import_module("streams.processor")
        simulator = importlib.import_module("streams.simulator")
        state_cache = importlib.import_module("streams.state_cache")
    return processor, simulator, state_cache


def meaning_id() -> str:
    """A short hash of what a bank's states mean (see the module docstring)."""
    import state
    from state import customer

    _processor, simulator, _cache = shell_modules()
    h = hashlib.sha256(f"build{BUILD_VERSION}".encode())
    h.update(f"format{getattr(customer, 'FORMAT_VERSION', 3)}".encode())
    h.update(Path(simulator.__file__ or "").read_bytes())
    h.update((Path(state.__file__ or "").parent / "rules_default.toml").read_bytes())
    return h.hexdigest()[:12]


def bank_name(spec: BankSpec, days: int, meaning: str) -> str:
    return f"bank-c{spec.customers}-s{spec.seed}-l{spec.live}-d{days}-{meaning}"


def partition_of(key: bytes) -> int:
    return zlib.crc32(key) % PARTITIONS


# ------------------------------------------------------------------ state files


def write_states(path: Path, items: Iterable[tuple[bytes, bytes]]) -> int:
    """Write (key, state) pairs; returns how many. Atomic: a ``.tmp`` renamed."""
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("wb") as f:
        f.write(_STATES_MAGIC)
        for key, value in items:
            f.write(_PAIR.pack(len(key), len(value)))
            f.write(key)
            f.write(value)
            n += 1
    tmp.rename(path)
    return n


def read_states(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """The (key, state) pairs of a states file, in the order written."""
    data = path.read_bytes()
    if not data.startswith(_STATES_MAGIC):
        raise ValueError(f"{path} is not a bank states file (delete it to rebuild)")
    pos, end, size = len(_STATES_MAGIC), len(data), _PAIR.size
    unpack = _PAIR.unpack_from
    while pos < end:
        kl, vl = unpack(data, pos)
        pos += size
        yield data[pos : pos + kl], data[pos + kl : pos + kl + vl]
        pos += kl + vl


# ------------------------------------------------------------------ building


def ensure_banks(spec: BankSpec, quiet: bool = False) -> dict[int, BankFiles]:
    """Every cut of ``spec``, building the missing ones in one simulator pass.

    A build holds a lock on the bank (its customers, seed and live count): another
    process asking for the same bank waits for it and then finds the files, instead
    of building them a second time."""
    meaning = meaning_id()
    files = {d: _files(spec, d, meaning) for d in spec.days}
    if any(f is None for f in files.values()):
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        lock = CACHE_DIR / f"{bank_name(spec, 0, meaning).rsplit('-d0-', 1)[0]}.lock"
        with lock.open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # released when the file closes
            files = {d: _files(spec, d, meaning) for d in spec.days}
            missing = [d for d, f in files.items() if f is None]
            if missing:
                build(spec, tuple(sorted(missing)), meaning, quiet)
                files = {d: _files(spec, d, meaning) for d in spec.days}
    out = {d: f for d, f in files.items() if f is not None}
    if len(out) != len(spec.days):
        raise RuntimeError(f"bank build left cuts missing: {sorted(set(spec.days) - set(out))}")
    return out


def _files(spec: BankSpec, days: int, meaning: str) -> BankFiles | None:
    base = CACHE_DIR / bank_name(spec, days, meaning)
    states, records, info = (base.with_suffix(s) for s in (".states", ".records", ".json"))
    if not (states.exists() and records.exists() and info.exists()):
        return None
    return BankFiles(days, states, records, json.loads(info.read_text()))


class _LiveFile:
    """The records after one cut, written as they stream past, up to ``limit``."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.f: BinaryIO = self.tmp.open("wb")
        self.writer = RecordWriter(self.f)
        self.limit = limit
        self.n = 0

    @property
    def done(self) -> bool:
        return self.n >= self.limit

    def add(self, rec: Any) -> None:
        self.writer.write(rec)
        self.n += 1
        if self.n >= self.limit:
            self.close()

    def close(self) -> None:
        if not self.f.closed:
            self.f.close()
            self.tmp.rename(self.path)


def build(spec: BankSpec, days: tuple[int, ...], meaning: str, quiet: bool = False) -> None:
    """One simulator pass through the core; write the cuts ``days`` of ``spec``."""
    from state.core import CoreError, apply
    from state.rules import load_rules

    processor, simulator, _cache = shell_modules()
    RawMessage, merge = processor.RawMessage, processor.merge_by_event_time
    rules = load_rules()
    decode = processor.BatchProcessor(rules).decode

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    sim = simulator.Simulator(simulator.SimConfig(customers=spec.customers, seed=spec.seed))
    cut_ts = [(d, sim.onboarding_end_ms + d * simulator.DAY_MS) for d in days]
    states: dict[bytes, Any] = {}
    pending: list[Any] = []
    live: list[tuple[int, _LiveFile]] = []
    stretches: list[dict[str, Any]] = []
    started = time.monotonic()
    cpu_mark, n_mark, n = time.process_time(), 0, 0

    def say(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    def flush() -> None:
        for item in merge([decode(m) for m in pending]):
            ev = item.event
            if ev is None:
                continue
            key = item.msg.key
            try:
                states[key] = apply(states.get(key), ev, rules).state
            except CoreError:
                continue
        pending.clear()

    say(
        f"  building a bank of {spec.customers:,} customers (seed {spec.seed}) with cuts "
        f"at {list(days)} days, {spec.live:,} live records each (states {meaning}) ..."
    )
    prev_day = -1
    for rec in sim.records():
        while cut_ts and rec.ts_ms > cut_ts[0][1]:
            d, _ts = cut_ts.pop(0)
            flush()
            now = time.process_time()
            stretches.append(
                {
                    "from_days": prev_day,
                    "to_days": d,
                    "events": n - n_mark,
                    "cpu_us_per_event": (now - cpu_mark) / max(n - n_mark, 1) * 1e6,
                }
            )
            cpu_mark, n_mark, prev_day = now, n, d
            base = CACHE_DIR / bank_name(spec, d, meaning)
            count = write_states(
                base.with_suffix(".states"), ((k, st.to_bytes()) for k, st in states.items())
            )
            info = {
                "customers": spec.customers,
                "seed": spec.seed,
                "days": d,
                "live": spec.live,
                "meaning": meaning,
                "customers_at_cut": count,
                "records_before_cut": n,
                "built_at": time.strftime("%F %T %Z"),
            }
            base.with_suffix(".json").write_text(json.dumps(info, indent=1))
            live.append((d, _LiveFile(base.with_suffix(".records"), spec.live)))
            say(
                f"    cut at {d} days: {n:,} records, {count:,} states, "
                f"{time.monotonic() - started:.0f}s"
            )
        for _d, lf in live:
            if not lf.done:
                lf.add(rec)
        if not cut_ts:  # past the last cut: only live records are still wanted
            if all(lf.done for _d, lf in live):
                break
            continue
        pending.append(RawMessage(rec.topic, partition_of(rec.key), n, rec.key, rec.value))
        n += 1
        if len(pending) >= BUILD_BATCH:
            flush()
    for _d, lf in live:
        lf.close()
    build_info = {
        "build_records": n,  # through the core (up to the last cut)
        "build_seconds": round(time.monotonic() - started, 1),
        "build_stretches": stretches,
    }
    for d in days:
        path = (CACHE_DIR / bank_name(spec, d, meaning)).with_suffix(".json")
        path.write_text(json.dumps(json.loads(path.read_text()) | build_info, indent=1))
    say(f"  built in {build_info['build_seconds']}s ({n:,} records through the core)")
