"""How the simulated bank's customers answer the worker's offers (issue 23).

Why the simulator answers real offers: a response names its offer by ``event_id``,
which only the worker knows (a hash of the offer's cause, kind and rules version), so
the simulator reads the ``offers`` topic back (streams/tools/offer_feed.py) and
answers each offer it sees on ``offer-responses``. What the customer answers depends
on the offer's kind and the tier in it: ``accept_rates`` are P(accepted) per (kind,
tier) with ``*`` for any; the rest is declined (``decline_share`` of it) or ignored.

Every draw for an offer comes from a random stream of its own, seeded from the
simulator's seed and the offer's ``event_id``: the bank's own streams (world, faults,
life) are never touched, so the default bank's records stay byte for byte what they
were, and an offer gets the same answer whenever the simulator happens to read it.
Pure, like the simulator: no clock, no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: P(accepted) per (offer kind, tier); "*" stands for any kind or any tier.
AcceptRates = tuple[tuple[str, str, float], ...]

DAY_MS: Final = 86_400_000
#: Where a customer answers: the channels a bank's campaign systems report, weighted.
_CHANNELS: Final = ("mobile", "online", "sms", "branch", "call_center", "relationship_manager")
_CHANNEL_WEIGHTS: Final = (45, 15, 10, 12, 8, 10)
_ANSWERED_WITHIN_MIN_DAYS: Final = 0.02  # about half an hour: nobody answers instantly


def parse_accept_rate(text: str) -> tuple[str, str, float]:
    """``KIND:TIER=RATE`` (``*`` for any kind or tier), e.g. ``wealth_products:hnw=0.3``."""
    target, sep, rate_text = text.partition("=")
    kind, colon, tier = target.partition(":")
    if not sep or not colon or not kind or not tier:
        raise ValueError(f"accept rate must be KIND:TIER=RATE ('*' for any), got {text!r}")
    try:
        rate = float(rate_text)
    except ValueError:
        raise ValueError(f"accept rate {text!r}: {rate_text!r} is not a number") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"accept rate {text!r}: must be within [0, 1]")
    return kind, tier, rate


def accept_rate(rates: AcceptRates, kind: str, tier: str) -> float | None:
    """P(accepted) for an offer of ``kind`` at ``tier``: the most specific entry wins
    (kind and tier, then kind with any tier, then any kind at the tier, then ``*:*``);
    None when no entry applies (the offer goes unanswered)."""
    best: tuple[int, float] | None = None
    for k, t, rate in rates:
        if k not in (kind, "*") or t not in (tier, "*"):
            continue
        rank = 2 * (k == kind) + (t == tier)
        if best is None or rank >= best[0]:
            best = (rank, rate)
    return None if best is None else best[1]


@dataclass(frozen=True)
class AnswerModel:
    """What decides the answers (SimConfig's offer-response options)."""

    rates: AcceptRates
    decline_share: float = 0.5
    #: accepted and declined answers come within this many days of the offer
    answer_within_days: float = 7.0
    #: an unanswered offer is marked ignored this many days after it
    ignored_after_days: float = 14.0

    def __post_init__(self) -> None:
        for kind, tier, rate in self.rates:
            if not kind or not tier or not 0.0 <= rate <= 1.0:
                raise ValueError(f"bad accept rate {(kind, tier, rate)!r}")
        if not 0.0 <= self.decline_share <= 1.0:
            raise ValueError(f"decline_share must be within [0, 1], got {self.decline_share}")
        if not self.answer_within_days > _ANSWERED_WITHIN_MIN_DAYS:
            raise ValueError("answer_within_days must be > 0.02")
        if not self.ignored_after_days > 0:
            raise ValueError("ignored_after_days must be > 0")


def draw_answer(
    model: AnswerModel, seed: int, offer: Mapping[str, Any], offer_ts_ms: int
) -> tuple[int, dict[str, Any]] | None:
    """The customer's answer to ``offer`` (an ``offers`` record): its event time and
    the response's fields but ``ts``; None if no rate applies to the offer."""
    rate = accept_rate(model.rates, str(offer["kind"]), str(offer["tier"]))
    if rate is None:
        return None
    offer_id = str(offer["event_id"])
    rng = random.Random(f"tierstream-sim:{seed}:answer:{offer_id}")
    u, v, w, x = rng.random(), rng.random(), rng.random(), rng.random()
    if u < rate:
        outcome = "accepted"
    elif v < model.decline_share:
        outcome = "declined"
    else:
        outcome = "ignored"
    fields: dict[str, Any] = {
        "event_id": f"sim-{seed}-answer-{offer_id}",
        "customer_id": offer["customer_id"],
        "offer_event_id": offer_id,
        "outcome": outcome,
    }
    if outcome == "ignored":
        ts = offer_ts_ms + int(model.ignored_after_days * DAY_MS)
        return ts, fields
    low = _ANSWERED_WITHIN_MIN_DAYS
    ts = offer_ts_ms + int((low + (model.answer_within_days - low) * w) * DAY_MS)
    fields["channel"] = _CHANNELS[_weighted_index(x, _CHANNEL_WEIGHTS)]
    reason = offer.get("reason")
    products = reason.get("products") if isinstance(reason, dict) else None
    if isinstance(products, str) and products:
        fields["product_id"] = products.split(",")[0]  # the top recommendation
    return ts, fields


def _weighted_index(u: float, weights: tuple[int, ...]) -> int:
    target = u * sum(weights)
    for i, weight in enumerate(weights):
        target -= weight
        if target < 0:
            return i
    return len(weights) - 1
