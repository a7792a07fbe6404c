"""A replay file's records in event-time order, within bounded memory.

Why: the worker applies one customer's events across the input topics in event-time
order only if each input partition arrives in event-time order (docs/topics.md,
"Order"): it merges a partition's topics by taking the earliest *head*. A file written
customer by customer -- one customer's whole history, then the next one's, the usual
shape of a backfill -- goes back in time at every customer, and replayed as it is, a
customer's later transaction can be applied before their earlier balance. So
``tierstream replay`` produces in event-time order.

How: an external merge sort. Records are gathered in file order into a *run* until the
run holds ``memory_bytes`` (keys, values and a fixed overhead per record); the run is
sorted by (event time, position in the file) -- stable: records of the same time keep
their file order, so a customer's same-time events stay in sequence -- and, when more
input follows, written to a temporary file. The runs are then merged (``heapq.merge``),
each read sequentially through a small buffer; more than ``MAX_FAN_IN`` runs are first
merged into fewer. One run is in memory while reading; one record and one buffer per
run while merging. A record whose event time cannot be read (a malformed line, which
the worker dead-letters anyway) sorts as time 0, before every event.
"""

from __future__ import annotations

import heapq
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Final

from schemas.events import INPUT_TOPICS, TOPIC_TICKS
from streams.tools.simulator import SimRecord

#: Default budget for the records held in memory at once.
DEFAULT_MEMORY_BYTES: Final = 256 * 1024 * 1024
#: What one record costs in memory besides its key and value (the tuple, the bytes
#: objects' headers, the sort key), a round figure measured on CPython 3.11.
RECORD_OVERHEAD: Final = 256
#: Most runs merged in one pass (each holds an open file and a read buffer).
MAX_FAN_IN: Final = 64
_READ_BUFFER: Final = 64 * 1024
#: time, position, topic index, key length (_NO_KEY: none), value length, partition
#: (-1: none; only ticks name theirs)
_HEADER: Final = struct.Struct("<qQBIIi")
_NO_KEY: Final = 0xFFFFFFFF
_TOPIC_NAMES: Final = (*INPUT_TOPICS, TOPIC_TICKS)
_TOPICS: Final = {t: i for i, t in enumerate(_TOPIC_NAMES)}

_Item = tuple[int, int, SimRecord]  # (event time, position in the file, record)


@dataclass
class SortStats:
    """What sorting took (reported by ``tierstream replay``)."""

    records: int = 0
    runs: int = 0  # runs written to temporary files (0: it all fitted in memory)
    spilled_bytes: int = 0
    peak_buffered_bytes: int = 0  # the largest run held in memory, by the estimate


def record_cost(rec: SimRecord) -> int:
    """The estimated memory of one record held in a run."""
    return len(rec.key or b"") + len(rec.value) + RECORD_OVERHEAD


def in_event_time_order(
    records: Iterable[SimRecord],
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    stats: SortStats | None = None,
    tmp_dir: str | None = None,
) -> Iterator[SimRecord]:
    """``records`` sorted by ``ts_ms`` (stable), holding about ``memory_bytes`` of them
    in memory at once; temporary files go to ``tmp_dir`` (default: the system's) and
    are gone when the iterator is exhausted or closed."""
    if memory_bytes <= 0:
        raise ValueError(f"memory_bytes must be > 0, got {memory_bytes}")
    st = stats if stats is not None else SortStats()
    runs: list[IO[bytes]] = []
    run: list[_Item] = []
    held = 0
    try:
        for position, rec in enumerate(records):
            if rec.topic not in _TOPICS:
                raise ValueError(f"not an input topic: {rec.topic!r}")
            run.append((rec.ts_ms, position, rec))
            held += record_cost(rec)
            st.records += 1
            if held >= memory_bytes:
                st.peak_buffered_bytes = max(st.peak_buffered_bytes, held)
                runs.append(_spill(run, st, tmp_dir))
                run, held = [], 0
        st.peak_buffered_bytes = max(st.peak_buffered_bytes, held)
        run.sort(key=_order)
        if not runs:
            yield from (rec for _t, _p, rec in run)
            return
        if run:
            runs.append(_spill(run, st, tmp_dir))
            run = []
        while len(runs) > MAX_FAN_IN:
            merged = heapq.merge(*(_read(f) for f in runs[:MAX_FAN_IN]), key=_order)
            first = _write(merged, tmp_dir, st)
            for f in runs[:MAX_FAN_IN]:
                f.close()
            runs = [*runs[MAX_FAN_IN:], first]
        for _t, _p, rec in heapq.merge(*(_read(f) for f in runs), key=_order):
            yield rec
    finally:
        for f in runs:
            f.close()


def _order(item: _Item) -> tuple[int, int]:
    return item[0], item[1]


def _spill(run: list[_Item], st: SortStats, tmp_dir: str | None) -> IO[bytes]:
    run.sort(key=_order)
    st.runs += 1
    return _write(iter(run), tmp_dir, st)


def _write(items: Iterator[_Item], tmp_dir: str | None, st: SortStats) -> IO[bytes]:
    f = tempfile.TemporaryFile(dir=tmp_dir, buffering=_READ_BUFFER)  # noqa: SIM115
    for ts, position, rec in items:
        key = rec.key
        klen = _NO_KEY if key is None else len(key)
        partition = -1 if rec.partition is None else rec.partition
        head = _HEADER.pack(ts, position, _TOPICS[rec.topic], klen, len(rec.value), partition)
        f.write(head)
        if key is not None:
            f.write(key)
        f.write(rec.value)
        st.spilled_bytes += len(head) + len(key or b"") + len(rec.value)
    f.flush()
    f.seek(0)
    return f


def _read(f: IO[bytes]) -> Iterator[_Item]:
    while True:
        head = f.read(_HEADER.size)
        if not head:
            return
        ts, position, topic, klen, vlen, partition = _HEADER.unpack(head)
        key = None if klen == _NO_KEY else f.read(klen)
        value = f.read(vlen)
        yield (
            ts,
            position,
            SimRecord(_TOPIC_NAMES[topic], key, value, ts, None if partition < 0 else partition),
        )
