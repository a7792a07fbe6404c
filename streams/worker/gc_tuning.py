"""Garbage-collector settings for a process that runs batches (worker, baseline).

A batch allocates tens of thousands of short-lived objects (messages, decoded events,
decisions) and CPython's default threshold runs a young-generation collection every 700
allocations, each one walking everything a batch still holds -- about 10-15 µs per
event here. Worse, every full collection walks every live container, and the worker
kept tens of thousands of decoded customer states (streams/pipeline/state_cache.py; it keeps
their bytes since 2026-12-07, which the collector does not walk): with the default
thresholds the collector took 10-20% of the pure core's time on the benchmark's data
(measured 2026-12-03). A high young threshold makes collections rare;
freezing what start-up allocated (modules, rules, the app) keeps it out of every full
collection. Reference counting still frees almost everything: the core builds no
cycles.
"""

from __future__ import annotations

import gc

#: (generation 0 allocations, generation 1 and 2 collection ratios)
THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Call once, after start-up allocations and before the first batch."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
