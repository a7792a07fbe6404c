"""Benchmark input: simulator records, cached on disk, loaded into Kafka.

Why a cache: the simulator makes ~60k records/s in pure Python, so 1.5M records cost
half a minute of CPU on a 2-core machine every run. The records are a pure function of
(customers, events, seed), so they are generated once and stored as length-prefixed
bytes under ``~/.cache/tierstream/bench``.

The file holds ``events`` records for the throughput runs plus a ``tail`` that
continues the same simulated bank in event time, for the latency phase (events the
workers have not seen yet, so they are applied and decide, not deduplicated).
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from schemas.events import INPUT_TOPICS
from streams.settings import Settings
from streams.tools.loader import produce_records
from streams.tools.simulator import SimConfig, SimRecord, Simulator

CACHE_DIR = Path(os.environ.get("TIERSTREAM_BENCH_CACHE", "~/.cache/tierstream/bench")).expanduser()
_HEADER = struct.Struct("<BHIq")  # topic index, key length, value length, event ts (ms)
_MAGIC = b"TSBENCH1"
_TOPIC_INDEX = {t: i for i, t in enumerate(INPUT_TOPICS)}


def cache_path(customers: int, events: int, tail: int, seed: int) -> Path:
    return CACHE_DIR / f"sim-c{customers}-n{events}-t{tail}-s{seed}.bin"


def ensure_dataset(customers: int, events: int, tail: int, seed: int) -> Path:
    """The cached file for these parameters, generating it if missing."""
    path = cache_path(customers, events, tail, seed)
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    started = time.monotonic()
    print(f"  generating {events + tail:,} records for {customers:,} customers ...", flush=True)
    sim = Simulator(SimConfig(customers=customers, seed=seed))
    with tmp.open("wb") as f:
        writer = RecordWriter(f)
        for rec in sim.records(limit=events + tail):
            writer.write(rec)
    tmp.rename(path)
    print(
        f"  generated in {time.monotonic() - started:.1f}s -> {path} "
        f"({path.stat().st_size / 1e6:.0f} MB)",
        flush=True,
    )
    return path


class RecordWriter:
    """Appends records to an open file in the format ``read_records`` reads."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self._pack = _HEADER.pack
        f.write(_MAGIC)

    def write(self, rec: SimRecord) -> None:
        f = self.f
        f.write(self._pack(_TOPIC_INDEX[rec.topic], len(rec.key), len(rec.value), rec.ts_ms))
        f.write(rec.key)
        f.write(rec.value)


def read_records(path: Path, start: int = 0, limit: int | None = None) -> Iterator[SimRecord]:
    """Records ``start`` .. ``start + limit`` of a cached file."""
    size = _HEADER.size
    unpack = _HEADER.unpack_from
    n = 0
    with path.open("rb") as f:
        data = f.read()
    if not data.startswith(_MAGIC):
        raise ValueError(f"{path} is not a benchmark data file (delete it to regenerate)")
    pos = len(_MAGIC)
    end = len(data)
    while pos < end:
        ti, kl, vl, ts = unpack(data, pos)
        pos += size
        if n >= start:
            if limit is not None and n >= start + limit:
                return
            key = data[pos : pos + kl]
            value = data[pos + kl : pos + kl + vl]
            yield SimRecord(INPUT_TOPICS[ti], key, value, ts)
        pos += kl + vl
        n += 1


def load_into_kafka(settings: Settings, path: Path, events: int) -> tuple[int, float]:
    """Produce the first ``events`` records (murmur2, as the service requires)."""
    started = time.monotonic()
    n = produce_records(settings, read_records(path, 0, events))
    return n, time.monotonic() - started
