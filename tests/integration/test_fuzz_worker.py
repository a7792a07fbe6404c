"""Hostile input through a real worker on the real broker and Redis (issue 18).

A few thousand records from the fuzz strategies (tests/fuzz/strategies.py: every field
of every input schema mutated, huge keys and values, invalid UTF-8, deep nesting,
times at the edges of the calendar, ...) plus the two records of the issue (a time in
year 1 on every input topic and on ticks, a 170 KB key) are mixed into a randomized
bank's good records on every input topic and on ``ticks``, produced, and consumed by
one worker. Then:

* the worker never exits (one start, alive at the end, every partition committed);
* every bad record is on ``dead-letters`` exactly once, with an error and its reason
  class, and the classes are what the decoder and the core say of those records when
  asked directly (tests/integration/reference_check.py ``walk``) -- and what the replay
  oracle counts; none is ``internal``;
* the good records around them are decided exactly as the replay oracle
  (tests/integration/oracle.py) and the independent reference (tests/reference) say.

CI form: ~2,000 hostile records; ``-m slow``: TIERSTREAM_FUZZ_WORKER_RECORDS (default
20,000). Figures go to the JSON-lines file $TIERSTREAM_FUZZ_REPORT if set
(docs/reliability.md, "Fuzzing through a worker").
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, Phase, given, seed, settings

from schemas.decoder import DecodeError, Decoder
from schemas.events import INPUT_TOPICS, TOPIC_TIER_OVERRIDES
from state.rules import load_rules
from streams.settings import Settings
from tests.fuzz.strategies import Record, records
from tests.integration.harness import WorkerProcess, consume_all, wait_caught_up
from tests.integration.oracle import recompute
from tests.integration.reference_check import (
    DECISION_TOPICS,
    decision_mismatches,
    read_decisions,
    reference_mismatches,
    walk_inputs,
)
from tests.integration.test_replay import java_partition
from tests.reference.bank import DAY_MS, T0_MS, bank, ts_text

#: Largest key + value produced (the broker's default limit is 1 MiB per batch).
MAX_MESSAGE_BYTES = 1_000_000
#: (contract topic, key, value, partition or None for the key's)
Wire = tuple[str, bytes | None, bytes | None, int | None]


def hostile(n: int, seed_value: int) -> list[Record]:
    """``n`` records drawn from the fuzz strategies, reproducibly."""
    out: list[Record] = []
    if n <= 0:
        return out

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(seed_value)
    @given(records())
    def collect(rec: Record) -> None:
        out.append(rec)

    collect()
    # A hostile tier override that is valid would set a relationship manager's tier,
    # which the independent reference does not model (it has no timers, so no expiry):
    # only the ones the decoder refuses go through the worker (the core's fuzz,
    # tests/fuzz, applies valid ones and expires them).
    decoder = Decoder(**load_rules().limits.decoder())
    return [
        r
        for r in out
        if r.topic != TOPIC_TIER_OVERRIDES
        or r.value is None
        or isinstance(decoder.decode(r.topic, r.value), DecodeError)
    ]


def issue_records() -> list[Wire]:
    """The records of issue 18: ``ts`` in year 1 on every input topic and on ticks, and
    a valid transaction under a 170,000-byte key of control characters."""
    year1 = "0001-01-01T00:00:00+01:00"
    docs = {
        "transactions": {"account_id": "A1", "type": "deposit", "amount": "10.00",
                         "currency": "CNY", "channel": "mobile"},
        "balances": {"account_id": "A1", "product": "deposit", "balance": "10.00",
                     "currency": "CNY"},
        "customer-profiles": {"segment": "retail", "marketing_consent": True},
        "risk-assessments": {"score": 50, "investment_experience_years": 2},
        "contacts": {"channel": "phone", "outcome": "reached"},
        "erasure-requests": {"requested_by": "privacy-office"},
        "tier-overrides": {"tier": "hnw", "set_by": "rm-1", "reason": "year 1"},
    }  # fmt: skip
    out: list[Wire] = []
    for topic, fields in docs.items():
        doc = {"event_id": f"y1-{topic}", "customer_id": "C1", "ts": year1, **fields}
        out.append((topic, b"C1", orjson.dumps(doc), None))
    tick = {"event_id": "tick-0--62135600400000", "partition": 0, "ts": year1}
    out.append(("ticks", None, orjson.dumps(tick), 0))
    doc = {"event_id": "big-key", "customer_id": "C1", "ts": "2026-03-01T10:00:00+08:00",
           **docs["transactions"]}  # fmt: skip
    out.append(("transactions", b"\x01" * 170_000, orjson.dumps(doc), None))
    return out


#: Good records per (topic, partition) at least this many times the hostile ones, so no
#: partition's input is mostly bad (the bad-share guard would rightly stop the worker;
#: the fuzz strategies favour a few customers and low partition numbers).
GOOD_PER_HOSTILE = 1.3


def good_records(
    seed_value: int,
    customers: int,
    days: int,
    partitions: int,
    hostile_per_partition: Counter[tuple[str, int]],
) -> list[Wire]:
    """A randomized bank (tests/reference/bank.py) and, spread over its stream, more
    good records wherever the hostile ones would otherwise dominate a partition: daily
    ticks of every partition, and small valid events of the bank's customers."""
    rnd = random.Random(seed_value)
    events = bank(seed_value, customers=customers, days=days)
    out: list[Wire] = [(t, d["customer_id"].encode(), orjson.dumps(d), None) for t, d in events]
    have = Counter((t, java_partition(k or b"", partitions)) for t, k, _v, _p in out)
    by_partition: dict[int, list[str]] = {}
    for cid in sorted({d["customer_id"] for _t, d in events}):
        by_partition.setdefault(java_partition(cid.encode(), partitions), []).append(cid)
    extra: list[Wire] = []
    for p in range(partitions):
        n_ticks = max(days, int(GOOD_PER_HOSTILE * hostile_per_partition[("ticks", p)]) + 1)
        for k in range(n_ticks):
            ts = T0_MS + (k * days * DAY_MS) // n_ticks + 3_600_000
            tick = {"event_id": f"tick-{p}-{ts}", "partition": p, "ts": ts_text(ts, rnd)}
            extra.append(("ticks", None, orjson.dumps(tick), p))
        for topic in INPUT_TOPICS:
            if topic not in _SMALL:
                continue  # erasure-requests: a good one erases (tests/fuzz has none either)
            want = int(GOOD_PER_HOSTILE * hostile_per_partition[(topic, p)]) + 1
            for i in range(max(0, want - have[(topic, p)])):
                cid = rnd.choice(by_partition[p])
                doc = {"event_id": f"{cid}-x{topic[:2]}{i}", "customer_id": cid,
                       "ts": ts_text(T0_MS + rnd.randint(0, days * DAY_MS), rnd),
                       **_SMALL[topic]}  # fmt: skip
                extra.append((topic, cid.encode(), orjson.dumps(doc), None))
    # spread over the bank's stream, each (topic, partition)'s records in their order:
    # every partition's input is good and bad mixed from its start, as the guard's
    # window sees it
    return mix(out, spread(extra, rnd, partitions), seed_value + 1)


def spread(records: list[Wire], rnd: random.Random, partitions: int) -> list[Wire]:
    """``records`` interleaved so that each (topic, partition)'s share is spread evenly
    over the whole list, in its own order."""
    groups: dict[tuple[str, int], list[Wire]] = {}
    for rec in records:
        topic, key, _value, partition = rec
        if partition is None:
            partition = java_partition(key or b"", partitions)
        groups.setdefault((topic, partition), []).append(rec)
    placed: list[tuple[float, int, Wire]] = []
    for group in groups.values():
        positions = sorted(rnd.random() for _ in group)
        placed.extend((x, len(placed), rec) for x, rec in zip(positions, group, strict=True))
    return [rec for _x, _i, rec in sorted(placed)]


#: Small valid events of each input topic (on an account of their own).
_SMALL: dict[str, dict[str, Any]] = {
    "transactions": {"account_id": "X9", "type": "fee", "amount": "0.01", "currency": "CNY",
                     "channel": "atm"},
    "balances": {"account_id": "X9", "product": "deposit", "balance": "1.00",
                 "currency": "CNY"},
    "customer-profiles": {"segment": "retail", "marketing_consent": True},
    "risk-assessments": {"score": 40, "investment_experience_years": 3},
    "contacts": {"channel": "phone", "outcome": "reached"},
    # clearing an override when none is in effect: audited, no tier change (the
    # reference takes it as it takes a contact)
    "tier-overrides": {"tier": None, "set_by": "rm-1", "reason": "nothing in effect"},
}  # fmt: skip


def hostile_partitions(bad: list[Wire], partitions: int, seed_value: int) -> list[Wire]:
    """Every hostile record with the partition it lands in: its key's (the producer's
    murmur2), the tick's, or for a record without a key one drawn here (so the good
    records can be balanced against it)."""
    rnd = random.Random(seed_value)
    out: list[Wire] = []
    for topic, key, value, partition in bad:
        if partition is None:
            partition = (
                rnd.randrange(partitions) if key is None else java_partition(key, partitions)
            )
        out.append((topic, key, value, partition))
    return out


def wire(rec: Record, partitions: int) -> Wire:
    """A fuzz record as it goes on the topic; a tick to the partition it names when it
    can be read, else to the record's own."""
    partition = None
    if rec.topic == "ticks":
        partition = rec.partition % partitions
        try:
            named = orjson.loads(rec.value or b"").get("partition")
            if isinstance(named, int) and 0 <= named < partitions:
                partition = named
        except (orjson.JSONDecodeError, AttributeError):
            pass
    return (rec.topic, rec.key, rec.value, partition)


def mix(good: list[Wire], bad: list[Wire], seed_value: int) -> list[Wire]:
    """The bad records at random places among the good ones; each topic's good
    records keep their order (ticks and a customer's events stay in sequence)."""
    rnd = random.Random(seed_value)
    slots = sorted(rnd.randrange(len(good) + 1) for _ in bad)
    out: list[Wire] = []
    j = 0
    for i, rec in enumerate(good):
        while j < len(slots) and slots[j] == i:
            out.append(bad[j])
            j += 1
        out.append(rec)
    out.extend(bad[j:])
    return out


def produce_wire(settings: Settings, records: list[Wire]) -> None:
    producer = Producer(settings.producer_config(**{"message.max.bytes": 1_048_576}))
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for n, (topic, key, value, partition) in enumerate(records, 1):
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(settings.topic(topic), **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        if n % 500 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0 and not errors, errors[:3]


def run_campaign(
    settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    n_hostile: int,
    seed_value: int,
    customers: int,
    days: int,
) -> dict[str, Any]:
    started = time.monotonic()
    generated = [wire(r, settings.partitions) for r in hostile(n_hostile, seed_value)]
    # a record the broker would refuse from any producer never reaches a worker
    bad = [r for r in generated if len(r[1] or b"") + len(r[2] or b"") <= MAX_MESSAGE_BYTES]
    unproducible = len(generated) - len(bad)
    bad += issue_records()
    bad = hostile_partitions(bad, settings.partitions, seed_value)
    per_partition = Counter((t, p) for t, _k, _v, p in bad if p is not None)
    good = good_records(seed_value, customers, days, settings.partitions, per_partition)
    # each partition's hostile records spread over the stream too (the strategies
    # produce runs of similar records)
    records = mix(good, spread(bad, random.Random(seed_value), settings.partitions), seed_value)
    produce_wire(settings, records)
    produced = time.monotonic()

    worker = make_worker()
    worker.start()
    wait_caught_up(settings, 60 + len(records) / 100, "the worker to commit all input", worker)
    assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
    assert worker.starts == 1
    processed = time.monotonic()

    rules = load_rules(settings.rules_path)
    w = walk_inputs(settings, rules)
    dead = [r["value"] for r in consume_all(settings, "dead-letters", timeout=60)]
    prefix = settings.topic_prefix
    got = {
        (d["source_topic"][len(prefix) :], d["partition"], d["offset"]): d.get("reason_class")
        for d in dead
    }
    # every bad record on dead-letters, once, with an error and its reason class
    assert len(got) == len(dead), "a record was dead-lettered twice"
    assert all(d["error"] and d.get("reason_class") for d in dead)
    missing = {k: v for k, v in w.dead.items() if k not in got}
    extra = {k: v for k, v in got.items() if k not in w.dead}
    wrong = {k: (w.dead[k], got[k]) for k in set(w.dead) & set(got) if w.dead[k] != got[k]}
    internal = [d["error"][:400] for d in dead if d.get("reason_class") == "internal"]
    assert not (missing or extra or wrong), (
        f"missing {list(missing.items())[:5]}, extra {list(extra.items())[:5]}, "
        f"wrong (want, got) {list(wrong.items())[:5]}; internal errors {internal[:3]}"
    )
    classes = Counter(got.values())
    assert "internal" not in classes
    # the issue's records among them, each with the limit it broke
    issue = {
        (topic, rec["reason_class"])
        for topic, rec in ((d["source_topic"][len(prefix) :], d) for d in dead)
        if rec["error"].startswith(("$.ts:", "key:")) and "limits." in rec["error"]
    }
    for topic in (*INPUT_TOPICS, "ticks"):
        assert (topic, "limits.min_year") in issue, topic
    assert ("transactions", "limits.max_key_bytes") in issue

    # the oracle: same dead letters per (topic, class), same decisions
    truth = recompute(settings, rules)
    by_topic_class = Counter((t, c) for (t, _p, _o), c in got.items())
    assert by_topic_class == Counter(truth.dead_letters)
    decisions = read_decisions(settings)
    for topic in DECISION_TOPICS:
        expected = [d.to_record() for d in truth.decisions if d.topic == topic]
        actual = [r for t, r in decisions if t == topic]
        mismatches = decision_mismatches(expected, actual)
        assert not mismatches, (topic, mismatches[:10])
    # the independent reference, on what the core accepted (it does not model the
    # core's accounts and 64-bit bounds, which hostile input reaches)
    problems = reference_mismatches(w, decisions, settings.rules_path, core_rejections=False)
    assert not problems, "worker vs independent reference:\n" + "\n".join(problems)
    # and the metric counts them all
    samples = worker.metric_samples("tierstream_dead_letters_total")
    assert sum(v for _l, v in samples) == len(dead)
    assert not [lab for lab, v in samples if lab["reason"] == "internal" and v]

    figures = {
        "records": len(records),
        "hostile": len(bad),
        "hostile_over_the_broker_limit": unproducible,
        "good": len(good),
        "dead_letters": len(dead),
        "by_class": dict(classes.most_common()),
        "core_rejections": len(w.rejected),
        "decisions": {t: sum(1 for x, _r in decisions if x == t) for t in DECISION_TOPICS},
        "worker_exits": 0,
        "seconds": {
            "produce": round(produced - started, 1),
            "process": round(processed - produced, 1),
            "check": round(time.monotonic() - processed, 1),
        },
    }
    print("\nfuzz through a worker:", json.dumps(figures))
    report = os.environ.get("TIERSTREAM_FUZZ_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"fuzz_worker": figures}) + "\n")
    return figures


def test_hostile_records_through_a_real_worker(
    service_settings: Settings, make_worker: Callable[..., WorkerProcess]
) -> None:
    figures = run_campaign(
        service_settings, make_worker, n_hostile=2000, seed_value=18, customers=40, days=40
    )
    assert figures["dead_letters"] > 1000


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_long_hostile_campaign_through_a_real_worker(
    service_settings: Settings, make_worker: Callable[..., WorkerProcess]
) -> None:
    n = int(os.environ.get("TIERSTREAM_FUZZ_WORKER_RECORDS", "20000"))
    seed_value = int(os.environ.get("TIERSTREAM_FUZZ_WORKER_SEED", "1818"))
    figures = run_campaign(
        service_settings, make_worker, n_hostile=n, seed_value=seed_value, customers=300, days=60
    )
    assert figures["dead_letters"] > n // 2
