"""Feeds records through decoder + core + dead-letter builder as the worker would, and
checks the invariant of issue 18 on every one:

* the decoder returns a typed event or a DecodeError, never raises;
* the core applies the event (to the customer's evolving state, to a fresh state and
  to a copy of a rich, populated one) or raises CoreError *and leaves the state byte
  for byte as it was* -- never any other exception; ``fire_timers`` likewise for ticks
  (on every state the batch holds and on the populated one);
* what the shell does next with an applied state works and is bounded: ``to_bytes``
  within ``state_size_bound``, a lossless round trip, ``profile_fields``,
  ``next_due_ms``, every decision valid against its output schema;
* offer responses reach attribution: one that names a placeholder offer id
  (``ANSWER_AN_OFFER``: all zeros or all f's) is made to name an offer the customer was
  really made earlier in the batch (on its evolving state) or one of the populated
  state's offers, so answers, latest outcomes and the decline cool-down meet later
  events instead of every response being unmatched;
* every rejection becomes a dead letter that is valid against its schema and within
  ``MAX_RECORD_BYTES`` (its message key within ``MAX_KEY_BYTES``).

Any other exception is a finding: ``FuzzFailure`` says which record and where (and the
record's internal dead letter is checked too, since that is what the worker would
send). Nothing here imports streams/: the worker's wiring is checked by the
integration tests; this is the pure part, at volume.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.dead_letter import (
    MAX_KEY_BYTES,
    MAX_RECORD_BYTES,
    dead_letter_message_key,
    dead_letter_record,
    internal_dead_letter_record,
)
from schemas.decoder import DecodeError, Decoder, validate_output
from schemas.events import OfferResponse, Tick
from state.core import CoreError, apply, fire_timers
from state.customer import CustomerState, event_key
from state.limits import state_size_bound
from state.profile import profile_fields
from state.rules import Rules, load_rules
from state.triggers import next_due_ms
from tests.fuzz.strategies import Record

__all__ = ["FuzzFailure", "Harness", "Stats", "tight_rules"]

#: The worker's clock for the skew check: 2026-12-01. Records carry times up to 2200;
#: those later than this + 5 minutes are refused by the decoder, as in the worker.
NOW_MS = 1795996800000
#: offer_event_id values the strategies draw that the harness turns into a real offer
ANSWER_AN_OFFER = frozenset({"0" * 32, "f" * 32})


class FuzzFailure(AssertionError):
    """A record broke the invariant; the message names it and the stage."""


@dataclass
class Stats:
    """What happened to the records fed (for the report in docs/reliability.md)."""

    records: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    decode_errors: Counter[str] = field(default_factory=Counter)
    core_errors: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    largest_dead_letter: int = 0
    largest_state: int = 0

    def merge(self, other: Stats) -> None:
        self.records += other.records
        self.outcomes.update(other.outcomes)
        self.decode_errors.update(other.decode_errors)
        self.core_errors.update(other.core_errors)
        self.decisions.update(other.decisions)
        self.dead_letters += other.dead_letters
        self.largest_dead_letter = max(self.largest_dead_letter, other.largest_dead_letter)
        self.largest_state = max(self.largest_state, other.largest_state)

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "outcomes": dict(self.outcomes.most_common()),
            "dead_letters": self.dead_letters,
            "decode_errors_top": dict(self.decode_errors.most_common(12)),
            "decode_error_kinds": len(self.decode_errors),
            "core_errors": dict(self.core_errors.most_common()),
            "decisions": dict(self.decisions.most_common()),
            "largest_dead_letter_bytes": self.largest_dead_letter,
            "largest_state_bytes": self.largest_state,
        }


def tight_rules(tmp_dir: str) -> Rules:
    """Rules with small limits and every optional feature on, so the fuzz reaches the
    limits quickly: avg_daily tiers, campaigns, 4 accounts, 32-character ids; tiers
    by behaviour (salary, contribution, SME turnover), RFM on spend, transaction fees
    (issue 22)."""
    path = f"{tmp_dir}/tight.toml"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(
            '[tiers]\nbasis = "avg_daily"\navg_days = 10\n'
            "[windows]\ndays = 30\n[dedup]\nsize = 8\ndays = 2\n"
            "[limits]\nmax_accounts = 4\nmax_id_chars = 32\nmax_field_chars = 40\n"
            "min_year = 1950\nmax_year = 2100\nmax_key_bytes = 128\n"
            "[care.cadence_days]\naffluent = 7\n"
            '[tiers.behaviour.affluent]\nmonthly_inflow_cny = "30000"\n'
            'sme_turnover_cny = "2000000"\n'
            '[tiers.behaviour.hnw]\ncontribution_cny = "50000"\n'
            '[rfm]\nmonetary = "spend"\n[value.fees]\ntransfer_out = "2.50"\n'
            '[[campaigns]]\nid = "c-2026"\nstart = 2026-06-01\nend = 2026-06-30\n'
            'kind = "summer"\n'
            '[[campaigns]]\nid = "c-1950"\nstart = 1950-01-01\nend = 1950-01-02\n'
            'kind = "old_times"\n'
        )
    return load_rules(path)


def _history(customer: str) -> list[tuple[str, dict[str, Any]]]:
    """A rich customer, as JSON on the topics: several accounts, currencies and
    products, months of transactions on every channel, consent, a birthday, an
    assessment and contacts; at the end a relationship manager's override to private
    (until September: the batch's ticks may expire it)."""
    out: list[tuple[str, dict[str, Any]]] = []
    base = "2026-0{m}-{d:02d}T{h:02d}:00:00+08:00"
    out.append(("customer-profiles", {"event_id": "h-p", "customer_id": customer,
                "ts": base.format(m=1, d=1, h=9), "segment": "sme",
                "marketing_consent": True, "birth_date": "1990-03-15"}))  # fmt: skip
    out.append(("risk-assessments", {"event_id": "h-r", "customer_id": customer,
                "ts": base.format(m=1, d=2, h=9), "score": 65,
                "investment_experience_years": 4}))  # fmt: skip
    products = ["deposit", "fund", "loan", "wealth"]
    for i, product in enumerate(products):
        out.append(("balances", {"event_id": f"h-b{i}", "customer_id": customer,
                    "account_id": f"H{i}", "ts": base.format(m=1, d=3 + i, h=10),
                    "product": product, "balance": "400000.00",
                    "currency": "CNY" if i % 2 else "USD"}))  # fmt: skip
    channels = ["mobile", "branch", "atm", "online", "pos", "call_center"]
    for i in range(60):
        out.append(("transactions", {"event_id": f"h-t{i}", "customer_id": customer,
                    "account_id": "H0", "ts": base.format(m=2 + i // 28, d=1 + i % 28, h=12),
                    "type": ["deposit", "withdrawal", "card_payment", "fee"][i % 4],
                    "amount": f"{100 + i * 37}.50", "currency": "CNY",
                    "channel": channels[i % 6]}))  # fmt: skip
    out.append(("contacts", {"event_id": "h-c", "customer_id": customer,
                "ts": base.format(m=4, d=1, h=15), "channel": "phone",
                "outcome": "reached"}))  # fmt: skip
    out.append(("tier-overrides", {"event_id": "h-o", "customer_id": customer,
                "ts": base.format(m=4, d=2, h=9), "tier": "private",
                "until": "2026-09-01T00:00:00+08:00", "set_by": "rm-" + "7" * 30,
                "reason": "assets held at another bank"}))  # fmt: skip
    return out


class Harness:
    """One rule set, its decoder, and the customers' states across a batch of records."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.decoder = Decoder(**rules.limits.decoder())
        self.bound = state_size_bound(rules)
        self.stats = Stats()
        self.states: dict[str, CustomerState] = {}
        #: the offers made to each evolving state in the batch (ids), for answers
        self.offers: dict[str, list[str]] = {}
        self.populated_offers: list[str] = []
        self._populated = self._build_populated()

    def _build_populated(self) -> bytes:
        state = None
        for topic, doc in _history("P"):
            ev = self.decoder.decode(topic, orjson.dumps(doc))
            assert not isinstance(ev, DecodeError), ev
            outcome = apply(state, ev, self.rules)
            state = outcome.state
            self.populated_offers += [d.event_id for d in outcome.decisions if d.topic == "offers"]
        assert state is not None and state.tier == state.override_tier == "private"
        assert self.populated_offers
        return state.to_bytes()

    def populated(self, customer_id: str) -> CustomerState:
        state = CustomerState.from_bytes(self._populated)
        state.customer_id = customer_id
        return state

    def reset(self) -> None:
        """Forget the batch's states (a new batch starts with no customers)."""
        self.states.clear()
        self.offers.clear()

    # ------------------------------------------------------------------ feeding

    def feed(self, rec: Record, now_ms: int | None = NOW_MS) -> None:
        self.stats.records += 1
        stage = ["start"]
        try:
            self._feed(rec, now_ms, stage)
        except FuzzFailure:
            raise
        except Exception as exc:  # the invariant: this never happens
            dead = internal_dead_letter_record(
                rec.topic, rec.partition, rec.offset, rec.key, rec.value, exc, rec.timestamp_ms
            )
            self._check_dead_letter(dead, rec.key)
            raise FuzzFailure(
                f"{type(exc).__name__} at {stage[-1]}: {exc}\n"
                f"record: topic={rec.topic} key={rec.key!r:.200} mutations={rec.mutations}\n"
                f"value: {rec.value!r:.2000}\n{traceback.format_exc()}"
            ) from exc

    def _feed(self, rec: Record, now_ms: int | None, stage: list[str]) -> None:
        stage.append("check_key")
        error = self.decoder.check_key(rec.key)
        if error is not None:
            self._reject(rec, error)
            return
        stage.append("decode")
        if rec.topic == "ticks":
            tick = self.decoder.decode_tick(rec.value, now_ms)
            if isinstance(tick, DecodeError):
                self._reject(rec, tick)
                return
            if not isinstance(tick, Tick):
                raise FuzzFailure(f"decode_tick returned {tick!r}")
            stage.append("fire_timers")
            self._tick(rec, tick)
            return
        event = self.decoder.decode(rec.topic, rec.value, now_ms)
        if isinstance(event, DecodeError):
            self._reject(rec, event)
            return
        if rec.key != event.customer_id.encode():  # the shell's co-partitioning check
            self._reject(rec, DecodeError("$.customer_id", "does not match the message key"))
            return
        cid = event.customer_id
        stage.append("apply(evolving)")
        evolving = self._answering(event, self.offers.get(cid, []))
        state = self._apply(rec, self.states.get(cid), evolving, dead_letter=True, made=cid)
        if state is not None:
            self.states[cid] = state
        stage.append("apply(fresh)")
        self._apply(rec, None, event)
        stage.append("apply(populated)")
        self._apply(rec, self.populated(cid), self._answering(event, self.populated_offers))

    @staticmethod
    def _answering(event: Any, offers: list[str]) -> Any:
        """A response naming a placeholder made to name one of ``offers`` (chosen by
        its event id), else the event as it is."""
        if not (isinstance(event, OfferResponse) and event.offer_event_id in ANSWER_AN_OFFER):
            return event
        if not offers or type(event.event_id) is not str:
            return event
        chosen = offers[event_key(event.event_id) % len(offers)]
        return dataclasses.replace(event, offer_event_id=chosen)

    def _apply(
        self,
        rec: Record,
        state: CustomerState | None,
        event: Any,
        dead_letter: bool = False,
        made: str | None = None,
    ) -> CustomerState | None:
        """Apply and check; ``made``: the customer whose offers to remember (the
        evolving state's)."""
        before = state.to_bytes() if state is not None else None
        try:
            outcome = apply(state, event, self.rules)
        except CoreError as err:
            if state is not None and state.to_bytes() != before:
                raise FuzzFailure(f"CoreError {err} after the state was changed") from err
            self.stats.core_errors[err.field] += 1
            if dead_letter:
                self._reject(rec, DecodeError(f"$.{err.field}", err.reason))
            return state
        self.stats.outcomes[outcome.status] += 1
        if outcome.answered is not None:
            self.stats.outcomes[f"answered_{outcome.answered[2]}"] += 1
        self._after(outcome.state, outcome.decisions)
        if made is not None:
            offers = self.offers.setdefault(made, [])
            offers += [d.event_id for d in outcome.decisions if d.topic == "offers"]
        return outcome.state

    def _tick(self, rec: Record, tick: Tick) -> None:
        self.stats.outcomes["tick"] += 1
        targets = [*self.states.items(), ("P", self.populated("P"))]
        for cid, state in targets:
            before = state.to_bytes()
            try:
                outcome = fire_timers(state, tick.ts, tick.event_id, self.rules)
            except CoreError as err:
                if state.to_bytes() != before:
                    raise FuzzFailure(f"CoreError {err} after the state was changed") from err
                self.stats.core_errors[f"tick:{err.field}"] += 1
                continue
            self.stats.outcomes[f"timers_{outcome.status}"] += 1
            self._after(outcome.state, outcome.decisions)
            if cid in self.states:
                self.states[cid] = outcome.state
                offers = self.offers.setdefault(cid, [])
                offers += [d.event_id for d in outcome.decisions if d.topic == "offers"]

    def _after(self, state: CustomerState, decisions: tuple[Any, ...]) -> None:
        """What the shell does with an applied state and its decisions."""
        data = state.to_bytes()
        if len(data) > self.bound:
            raise FuzzFailure(f"state of {len(data)} bytes over the bound {self.bound}")
        self.stats.largest_state = max(self.stats.largest_state, len(data))
        if CustomerState.from_bytes(data).to_bytes() != data:
            raise FuzzFailure("state does not survive its round trip")
        profile_fields(state, self.rules)
        next_due_ms(state, self.rules)
        for d in decisions:
            validate_output(d.topic, d.to_record())
            kind = getattr(d, "kind", None) or getattr(d, "action", None) or "tier"
            self.stats.decisions[f"{d.topic}:{kind}"] += 1

    def _reject(self, rec: Record, error: DecodeError) -> None:
        self.stats.decode_errors[error.limit or error.field] += 1
        record = dead_letter_record(
            rec.topic, rec.partition, rec.offset, rec.key, rec.value, error.describe(),
            rec.timestamp_ms,
        )  # fmt: skip
        self._check_dead_letter(record, rec.key)
        if self.stats.dead_letters % 16 == 0:  # and what an internal error would send
            exc = ValueError(repr(rec.value)[:5000])
            internal = internal_dead_letter_record(
                rec.topic, rec.partition, rec.offset, rec.key, rec.value, exc, rec.timestamp_ms
            )
            self._check_dead_letter(internal, rec.key)

    def _check_dead_letter(self, record: dict[str, Any], key: bytes | None) -> None:
        validate_output("dead-letters", record)
        size = len(orjson.dumps(record))
        if size > MAX_RECORD_BYTES:
            raise FuzzFailure(f"dead letter of {size} bytes over {MAX_RECORD_BYTES}")
        message_key = dead_letter_message_key(key)
        if message_key is not None and len(message_key) > MAX_KEY_BYTES:
            raise FuzzFailure("dead-letter message key over the limit")
        self.stats.dead_letters += 1
        self.stats.largest_dead_letter = max(self.stats.largest_dead_letter, size)
