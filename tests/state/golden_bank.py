"""A seeded simulated bank with months of history, run through the real core, digested.

Why: the customer state's format and data structures are an optimisation target
(issue 19), and an optimisation must not change a single decision. This module turns
a bank -- the project's simulator with redeliveries, late and out-of-order records,
malformed records, CRM contacts and clock ticks that fire timers -- into the message
stream a worker sees, runs it through ``BatchProcessor`` with a plain dict store (so
every state goes through ``to_bytes``/``from_bytes`` at every batch boundary, in
batches of random sizes) and reduces what came out to SHA-256 digests: every decision
record in order (byte-exact), every Redis profile write in order, and the result
counts. ``tests/state/test_golden.py`` compares them with digests recorded from the
code as it was before the v4 state format; ``python -m tests.state.golden_bank``
prints them (and ``--corpus PATH`` writes the stored states at the cut, see below).

The upgrade corpus: the bank's stored states at a batch boundary part-way through
(``Scenario.cut_at``), written by whatever code runs this module. Recorded with the
v3 code and committed (tests/state/data/), they let the test restore v3 states into
the current code, as a worker upgraded in place restores its changelog, and check
that the rest of the stream decides exactly what the v3 code decided.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import random
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from schemas.events import CONTACT_CHANNELS, CONTACT_OUTCOMES, TOPIC_DEAD_LETTERS
from state.rules import Rules, load_rules
from streams.pipeline.processor import BatchProcessor, merge_by_event_time
from streams.pipeline.records import RawMessage
from streams.tools.simulator import DAY_MS, HOUR_MS, SimConfig, Simulator, format_ts_bank_time

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Scenario:
    """One golden bank: who, how long, which rules, where the upgrade cut is."""

    name: str
    customers: int
    days: int
    seed: int
    partitions: int = 4
    events_per_day: int | None = None  # None: the simulator's 4 per customer
    rules_toml: str = ""  # overrides of the default rules ("" = defaults)
    #: the message index at (the first batch boundary after) which the corpus is cut
    cut_at: int = 0

    def rules(self) -> Rules:
        if not self.rules_toml:
            return load_rules()
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "rules.toml"
            p.write_text(self.rules_toml)
            return load_rules(str(p))


#: Default rules, 300 customers, 120 simulated days.
DEFAULT = Scenario(name="default", customers=300, days=120, seed=19, cut_at=100_000)

#: Rules that reach the other paths: average-daily-balance tiering over 30 days (the
#: AUM samples), a short window counting only some transaction types (sparse
#: activity: dormancy, churn risk, varied RFM), a small dedup set (FIFO eviction by
#: size), short assessment validity (expiry), two campaigns (one restricted to
#: products) and a 12-day review cadence for affluent.
VARIANT = Scenario(
    name="variant",
    customers=150,
    days=130,
    seed=23,
    events_per_day=450,
    cut_at=30_000,
    rules_toml="""
[tiers]
basis = "avg_daily"
avg_days = 30
[windows]
days = 45
exclude_types = ["fee", "interest", "card_payment", "withdrawal", "transfer_in"]
[offers]
digital_banking_max_age = 45
digital_banking_min_transactions = 3
[risk]
assessment_validity_days = 50
[care]
dormancy_days = 12
[dedup]
size = 24
days = 3
[alerts]
aum_drop_days = 10
churn_p_alive = 0.8
[care.cadence_days]
affluent = 12
[[campaigns]]
id = "spring-2026"
start = 2026-02-17
end = 2026-03-03
kind = "spring_festival"
[[campaigns]]
id = "funds-2026q2"
start = 2026-04-08
end = 2026-04-20
tiers = ["affluent", "hnw", "private"]
products = ["MMF-01", "BOND-02", "WM-03"]
kind = "fund_week"
spread_hours = 6
""",
)

SCENARIOS = {s.name: s for s in (DEFAULT, VARIANT)}


def partition_of(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions


def _tick(partition: int, ts_ms: int) -> RawMessage:
    value = orjson.dumps(
        {
            "event_id": f"tick-{partition}-{ts_ms}",
            "partition": partition,
            "ts": format_ts_bank_time(ts_ms),
        }
    )
    return RawMessage("ticks", partition, 0, None, value, ts_ms)


def messages(sc: Scenario) -> list[RawMessage]:
    """The bank's stream as a worker would consume it, in consumption order.

    Simulator records (with 1% redeliveries, 1% late records and 0.2% malformed
    ones), CRM contacts for random customers (some stamped hours in the past, some
    redelivered), now and then a record replayed from weeks earlier (past the dedup
    horizon: applied last-writer-wins, or late when older than the window), and every
    400 records a tick per partition at the newest event time seen (so timers fire
    between events, as the clock makes them)."""
    cfg = SimConfig(
        customers=sc.customers,
        seed=sc.seed,
        duplicate_share=0.01,
        late_share=0.01,
        bad_share=0.002,
        drift_share=0.15,
        events_per_day=sc.events_per_day,
    )
    sim = Simulator(cfg)
    end_ms = cfg.start_ms + sc.days * DAY_MS
    rnd = random.Random(f"golden:{sc.name}:{sc.seed}")
    out: list[RawMessage] = []
    offsets: dict[tuple[str, int], int] = {}
    last_ts = 0
    n_contacts = 0

    def add(topic: str, key: bytes | None, value: bytes, ts: int, p: int) -> None:
        off = offsets.get((topic, p), 0)
        offsets[(topic, p)] = off + 1
        out.append(RawMessage(topic, p, off, key, value, ts))

    for i, rec in enumerate(sim.records()):
        if rec.ts_ms > end_ms:
            break
        add(rec.topic, rec.key, rec.value, rec.ts_ms, partition_of(rec.key, sc.partitions))
        last_ts = max(last_ts, rec.ts_ms)
        if rnd.random() < 0.004:  # a CRM contact
            n_contacts += 1
            cid = f"C{rnd.randrange(sc.customers):07d}"
            ts = last_ts - rnd.randrange(0, 3 * HOUR_MS)
            doc = {
                "event_id": f"crm-{sc.seed}-{n_contacts}",
                "customer_id": cid,
                "ts": format_ts_bank_time(ts),
                "channel": rnd.choice(CONTACT_CHANNELS),
                "outcome": rnd.choice(CONTACT_OUTCOMES),
            }
            value = orjson.dumps(doc)
            key = cid.encode()
            for _ in range(2 if rnd.random() < 0.1 else 1):
                add("contacts", key, value, ts, partition_of(key, sc.partitions))
        if rnd.random() < 0.0005 and len(out) > 50_000:  # a producer replays an old record
            old = out[rnd.randrange(0, len(out) - 40_000)]
            if old.key is not None:
                add(old.topic, old.key, old.value, old.timestamp_ms, old.partition)
        if i % 400 == 399:
            for p in range(sc.partitions):
                out.append(_tick(p, last_ts))
    return out


@dataclass
class Digest:
    """What a run decided, reduced to hashes (plus counts to show what differs)."""

    outputs: hashlib._Hash = field(default_factory=hashlib.sha256)
    profiles: hashlib._Hash = field(default_factory=hashlib.sha256)
    decisions: int = 0
    profile_writes: int = 0
    dead_letters: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    final_profiles: dict[bytes, dict[str, str]] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        final = hashlib.sha256()
        for key in sorted(self.final_profiles):
            final.update(
                key + b"\x00" + orjson.dumps(self.final_profiles[key], option=orjson.OPT_SORT_KEYS)
            )
        return {
            "outputs_sha256": self.outputs.hexdigest(),
            "profile_writes_sha256": self.profiles.hexdigest(),
            "final_profiles_sha256": final.hexdigest(),
            "decisions": self.decisions,
            "profile_writes": self.profile_writes,
            "dead_letters": self.dead_letters,
            "counts": dict(sorted(self.counts.items())),
        }


def batches(
    msgs: list[RawMessage], seed: int, start: int = 0
) -> Iterator[tuple[int, list[RawMessage]]]:
    """(index of the first message, batch) in batches of random sizes, 1 to 1,500."""
    rnd = random.Random(seed)
    i = start
    while i < len(msgs):
        size = rnd.choice((1, 3, 17, 120, 400, 1000, 1500))
        yield i, msgs[i : i + size]
        i += size


def cut_index(sc: Scenario, msgs: list[RawMessage]) -> int:
    """The first batch boundary at or after ``sc.cut_at``."""
    for i, _batch in batches(msgs, sc.seed):
        if i >= sc.cut_at:
            return i
    return len(msgs)


def run(
    sc: Scenario,
    msgs: list[RawMessage],
    store: dict[bytes, bytes] | None = None,
    start: int = 0,
    stop: int | None = None,
) -> tuple[Digest, dict[bytes, bytes]]:
    """Messages ``start``..``stop`` (batch boundaries) through a fresh ``BatchProcessor``
    with a dict store (``store``: states restored before the first batch)."""
    rules = sc.rules()
    proc = BatchProcessor(rules)
    store = {} if store is None else store
    digest = Digest()
    counts = digest.counts
    stop = len(msgs) if stop is None else stop

    def load(_p: int, key: bytes) -> bytes | None:
        return store.get(key)

    def scan(p: int) -> Iterable[tuple[bytes, bytes]]:
        return [(k, v) for k, v in sorted(store.items()) if partition_of(k, sc.partitions) == p]

    for i, batch in batches(msgs, sc.seed, 0):
        if i < start:
            continue
        if i >= stop:
            break
        decoded = [proc.decode(m) for m in batch]
        res = proc.apply_ordered(merge_by_event_time(decoded), load, scan)
        for rec in res.outputs:
            if rec.topic == TOPIC_DEAD_LETTERS:
                digest.dead_letters += 1
                continue
            digest.decisions += 1
            digest.outputs.update(
                b"%s\x00%s\x00%d\x00%s\n"
                % (rec.topic.encode(), rec.key or b"", rec.source_partition, rec.value)
            )
        for key in sorted(res.profiles):
            fields = res.profiles[key]
            digest.profile_writes += 1
            digest.profiles.update(key + b"\x00" + orjson.dumps(fields) + b"\n")
            digest.final_profiles[key] = fields
        for (topic, result), n in res.counts.items():
            if result == "dead_letter":
                continue
            k = f"{topic}:{result}"
            counts[k] = counts.get(k, 0) + n
        for _p, key, value in res.states:
            store[key] = value
    return digest, store


def write_corpus(path: Path, store: dict[bytes, bytes]) -> None:
    """The stored states as gzip'd JSON lines ``[key, state]`` (sorted by key)."""
    with gzip.open(path, "wb", compresslevel=9) as f:
        for key in sorted(store):
            f.write(orjson.dumps([key.decode(), store[key].decode()]) + b"\n")


def read_corpus(path: Path) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    with gzip.open(path, "rb") as f:
        for line in f:
            key, value = orjson.loads(line)
            out[key.encode()] = value.encode()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--corpus", type=Path, help="write the stored states at the cut here")
    args = ap.parse_args()
    sc = SCENARIOS[args.scenario]
    msgs = messages(sc)
    cut = cut_index(sc, msgs)
    whole, _ = run(sc, msgs)
    _first, store = run(sc, msgs, stop=cut)
    if args.corpus is not None:
        write_corpus(args.corpus, store)
    rest, _ = run(sc, msgs, store=dict(store), start=cut)
    print(
        orjson.dumps(
            {
                "scenario": sc.name,
                "messages": len(msgs),
                "cut": cut,
                "whole": whole.summary(),
                "after_cut": rest.summary(),
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    main()
