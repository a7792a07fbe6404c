"""Live input for the chaos tests: a paced producer that runs until told to stop, and
a bank whose customers, and input partitions, keep appearing while it runs.

Why the producer runs until stopped rather than through a fixed list: a kill, a
rebalance or an outage proves something only if input is still being produced when it
happens. A restart takes 14-15 s (the dead member's session timeout), so a fixed list
sized for "about the length of the test" ran dry before the later kills on a slow
machine. The tests stop the producer after their last fault, and assert at every fault
that it is still producing.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import orjson
from confluent_kafka import Producer

from streams.settings import Settings
from streams.tools.simulator import SimConfig, Simulator
from tests.integration.partitioning import key_on_partition

Record = tuple[str, bytes | None, bytes | None]


class LoadProducer(threading.Thread):
    """Produces records at a fixed rate in the background until stopped or out of input.

    Records go out in the given (event-time) order, and the producer waits for the
    broker's ack whenever the next record is for another topic: then a record never
    becomes visible before one produced earlier on another input, so the worker's
    event-time alignment sees the same order the oracle recomputes. (Without this, a
    fetch can see topic B's newer record before topic A's older one — the same race
    Kafka Streams has with max.task.idle.ms=0.)

    ``only_topic`` (set while running) skips every record of the other topics: with one
    topic there is no topic change to wait at, so the producer keeps producing while
    the broker is down (librdkafka buffers and retries), and nothing can become visible
    out of order when it returns. ``single_topic_ready`` is set once that mode is in
    force and everything produced before it was acknowledged.
    """

    def __init__(self, settings: Settings, records: Iterable[Record], rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.records, self.rate = settings, records, rate
        self.error: BaseException | None = None
        #: records handed to the client, in total and per topic
        self.produced = 0
        self.produced_on: dict[str, int] = {}
        #: records left out while ``only_topic`` was in force
        self.skipped = 0
        self.only_topic: str | None = None
        self.single_topic_ready = threading.Event()
        self._stopping = threading.Event()
        self._delivery_errors: list[str] = []

    @property
    def producing(self) -> bool:
        return self.is_alive() and not self._stopping.is_set() and self.error is None

    def stop(self, timeout: float = 150) -> None:
        """Stop producing, wait until everything produced was acknowledged, and raise
        whatever went wrong on the way."""
        self._stopping.set()
        self.join(timeout)
        assert not self.is_alive(), "the load producer did not stop"
        assert self.error is None, self.error

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._delivery_errors.append(str(err))

    def run(self) -> None:
        try:
            p = Producer(
                self.settings.producer_config(
                    **{
                        "linger.ms": 0,
                        "message.timeout.ms": 120_000,  # retry through a broker restart
                        "on_delivery": self._on_delivery,
                    }
                )
            )
            start = time.monotonic()
            last_topic: str | None = None
            for topic, key, value in self.records:
                if self._stopping.is_set():
                    break
                only = self.only_topic
                if only is None:
                    self.single_topic_ready.clear()
                elif not self.single_topic_ready.is_set():
                    assert p.flush(60) == 0, "records not acknowledged within 60 s"
                    last_topic = only
                    self.single_topic_ready.set()
                if only is not None and topic != only:
                    self.skipped += 1
                    continue
                if last_topic is not None and topic != last_topic:
                    assert p.flush(120) == 0, "records not acknowledged within 120 s"
                p.produce(self.settings.topic(topic), key=key, value=value)
                p.poll(0)
                last_topic = topic
                self.produced += 1
                self.produced_on[topic] = self.produced_on.get(topic, 0) + 1
                ahead = start + self.produced / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            assert p.flush(120) == 0, "records not acknowledged within 120 s"
            assert not self._delivery_errors, self._delivery_errors[:3]
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def sim_stream(customers: int, seed: int) -> Iterator[Record]:
    """The simulator's bank, endless, without late deliveries (the oracle's order is the
    event-time merge of what was produced; a late record is a different test)."""
    cfg = SimConfig(customers=customers, seed=seed, late_share=0.0)
    return ((r.topic, r.key, r.value) for r in Simulator(cfg).records())


def _ts(ms: int) -> str:
    s, frac = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:03d}+00:00"


def _money(x: Decimal) -> str:
    return str(x.quantize(Decimal("0.01")))


def joining_bank(
    customers: int,
    seed: int,
    *,
    partitions: int,
    open_every: int,
    join_every: int = 60,
    step_ms: float = 100.0,
    start_ms: int = 1_767_196_800_000,
) -> Iterator[Record]:
    """``balances`` and ``transactions`` of a bank whose customers, and with them the
    input partitions, keep appearing, in event-time order (endless: the producer decides
    how much is produced).

    Why not the simulator: it onboards every customer in its first ~1,000 records, so
    every input partition has been read and committed within a second of the start.
    Two things need the opposite, all through a run with kills and rebalances:

    * a customer's opening balance followed closely by their first transaction (applied
      the other way round, the first tier is wrong: ``initial mass`` then ``upgrade``);
    * input partitions whose *first* records arrive while a rebalance is under way: a
      partition the group never committed is where faust's seek back to the committed
      offsets does nothing (docs/reliability.md, "Records at the head of a partition").

    One customer joins per ``join_every`` records on average; the first ``open_every``
    customers all land on partition 0, the next one opens partition 1, and so on (keys
    chosen with Kafka's murmur2), later ones land on any open partition. A customer
    opens with a balance of an investment account (log-uniform 10 k to 10 M CNY: every
    tier) and of a deposit account, a first transaction follows within a minute of
    event time, then more transactions (with ``balance_after``), snapshots of the
    investment account drifting a few percent (sometimes 40%, across tier lines) and
    now and then a large outflow. Record i is ``step_ms`` of event time after record
    i - 1 on average.
    """
    rng = random.Random(seed)
    cent = Decimal("0.01")
    active: list[tuple[int, int, int]] = []  # (next event time, sequence, customer)
    keys: list[bytes] = []
    invest: list[Decimal] = []
    deposit: list[Decimal] = []
    n = seq = 0
    opened = 0
    next_join = start_ms

    def record(topic: str, cid: int, fields: dict[str, object]) -> Record:
        nonlocal n
        n += 1
        key = keys[cid]
        value = {"event_id": f"join-{seed}-{n}", "customer_id": key.decode(), **fields}
        return (topic, key, orjson.dumps(value))

    def balance(cid: int, acct: str, product: str, amount: Decimal, now: int) -> Record:
        return record(
            "balances",
            cid,
            {"account_id": acct, "ts": _ts(now), "product": product,
             "balance": _money(amount), "currency": "CNY"},
        )  # fmt: skip

    def txn(cid: int, acct: str, kind: str, amount: Decimal, after: Decimal, now: int) -> Record:
        return record(
            "transactions",
            cid,
            {"account_id": acct, "ts": _ts(now), "type": kind, "amount": _money(amount),
             "balance_after": _money(after), "currency": "CNY",
             "channel": rng.choice(("mobile", "online", "branch", "atm"))},
        )  # fmt: skip

    while True:
        if len(keys) < customers and (not active or next_join <= active[0][0]):
            now = next_join
            cid = len(keys)
            next_join += int(rng.expovariate(1 / (join_every * step_ms))) + 1
            if opened < partitions and cid % open_every == 0:
                target = opened
                opened += 1
            else:
                target = rng.randrange(opened)
            keys.append(key_on_partition(f"j{seed}-{cid}", target, partitions))
            invest.append(Decimal(10 ** rng.uniform(4, 7)).quantize(cent))
            deposit.append(Decimal(rng.uniform(1_000, 50_000)).quantize(cent))
            yield balance(cid, "W", "wealth", invest[cid], now)
            yield balance(cid, "D", "deposit", deposit[cid], now)
            seq += 1
            heapq.heappush(active, (now + rng.randint(1, 60_000), seq, cid))
            continue
        now, _s, cid = heapq.heappop(active)
        roll = rng.random()
        if roll < 0.25:
            drift = rng.gauss(0.0, 0.03) if rng.random() < 0.9 else rng.choice((-0.4, 0.4))
            invest[cid] = max(Decimal(0), invest[cid] * Decimal(1 + drift)).quantize(cent)
            yield balance(cid, "W", "wealth", invest[cid], now)
        elif roll > 0.98 and invest[cid] > 1000:
            amount = (invest[cid] * Decimal("0.6")).quantize(cent)  # a large outflow
            invest[cid] -= amount
            yield txn(cid, "W", "transfer_out", amount, invest[cid], now)
        else:
            if rng.random() < 0.5 or deposit[cid] < 200:
                kind, amount = "deposit", Decimal(rng.uniform(10, 5_000)).quantize(cent)
            else:
                kind = rng.choice(("withdrawal", "card_payment", "transfer_out"))
                amount = Decimal(rng.uniform(1, float(deposit[cid]) / 4)).quantize(cent)
            deposit[cid] += amount if kind == "deposit" else -amount
            yield txn(cid, "D", kind, amount, deposit[cid], now)
        seq += 1
        # every customer's events come at a rate that keeps ~step_ms between records
        gap = rng.expovariate(1 / (step_ms * len(keys)))
        heapq.heappush(active, (now + int(gap) + 1, seq, cid))
