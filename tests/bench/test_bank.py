"""bench/bank.py: banks with history, built once through the core and cached.

The benchmark's states must be what a worker would hold: the fast build (states kept
decoded between batches) is compared byte for byte with ``BatchProcessor`` over a
dict store (every state through ``to_bytes``/``from_bytes`` between batches), on a
simulated bank the test did not shape.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bank
from bench.bank import BankSpec, ensure_banks, partition_of, read_states, write_states
from bench.data import read_records
from state.rules import load_rules
from streams.pipeline.processor import BatchProcessor, RawMessage
from streams.tools.simulator import DAY_MS, SimConfig, Simulator

SPEC = BankSpec(customers=120, seed=11, days=(0, 6), live=1500)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(bank, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(bank, "BUILD_BATCH", 500)  # several batches per cut
    return tmp_path


def _reference(spec: BankSpec, batch: int) -> tuple[dict[int, dict[bytes, bytes]], dict[int, list]]:
    """States at each cut and the live records after it, the slow and obvious way."""
    proc = BatchProcessor(load_rules())
    store: dict[bytes, bytes] = {}
    sim = Simulator(SimConfig(customers=spec.customers, seed=spec.seed))
    cuts = [(d, sim.onboarding_end_ms + d * DAY_MS) for d in sorted(spec.days)]
    pending: list[RawMessage] = []
    snaps: dict[int, dict[bytes, bytes]] = {}
    live: dict[int, list] = {}

    def flush() -> None:
        if pending:
            res = proc.process(pending, lambda _p, k: store.get(k))
            store.update({k: v for _p, k, v in res.states})
            pending.clear()

    for n, rec in enumerate(sim.records()):
        while cuts and rec.ts_ms > cuts[0][1]:
            flush()
            d = cuts.pop(0)[0]
            snaps[d], live[d] = dict(store), []
        for recs in live.values():
            if len(recs) < spec.live:
                recs.append(rec)
        if not cuts and all(len(r) >= spec.live for r in live.values()):
            break
        pending.append(RawMessage(rec.topic, partition_of(rec.key), n, rec.key, rec.value))
        if len(pending) >= batch:
            flush()
    return snaps, live


def test_states_are_byte_for_byte_what_batch_processor_leaves(cache: Path) -> None:
    files = ensure_banks(SPEC, quiet=True)
    snaps, live = _reference(SPEC, 500)
    for d in SPEC.days:
        got = dict(read_states(files[d].states))
        assert got == snaps[d], f"cut {d}"
        assert files[d].customers == len(got) == SPEC.customers
        assert list(read_records(files[d].records)) == live[d]
    # with history, states grow: the later cut's states are larger on average
    mean = {d: sum(map(len, dict(read_states(files[d].states)).values())) for d in SPEC.days}
    assert mean[6] > mean[0]


def test_a_built_bank_is_reused_and_a_half_written_one_rebuilt(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ensure_banks(SPEC, quiet=True)
    first[6].records.unlink()  # as if the build had been interrupted

    calls: list[tuple[int, ...]] = []
    real_build = bank.build

    def counting_build(spec: BankSpec, days: tuple[int, ...], meaning: str, quiet: bool) -> None:
        calls.append(days)
        real_build(spec, days, meaning, quiet)

    monkeypatch.setattr(bank, "build", counting_build)
    again = ensure_banks(SPEC, quiet=True)
    assert calls == [(6,)]  # only the incomplete cut is built again
    assert dict(read_states(again[6].states)) == dict(read_states(first[6].states))
    ensure_banks(SPEC, quiet=True)
    assert calls == [(6,)]


def test_states_file_round_trip_and_refuses_other_files(tmp_path: Path) -> None:
    items = [(b"C1", b"\x00\x01"), (b"", b""), (b"C" * 300, bytes(range(256)) * 5)]
    path = tmp_path / "x.states"
    assert write_states(path, items) == 3
    assert list(read_states(path)) == items
    (tmp_path / "y.states").write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="not a bank states file"):
        list(read_states(tmp_path / "y.states"))


def test_spec_is_checked() -> None:
    with pytest.raises(ValueError):
        BankSpec(customers=0, seed=1, days=(0,), live=10)
    with pytest.raises(ValueError):
        BankSpec(customers=10, seed=1, days=(-1,), live=10)
