"""The HTTP API's abuse limits, on a controlled clock (no services)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.http.limits import OVERFLOW, LimitConfig, Limited, Limiter, Tarpit


def _limiter(**kw: float) -> Limiter:
    return Limiter(LimitConfig(**kw))  # type: ignore[arg-type]


def test_client_rate_allows_a_burst_then_refuses_with_the_wait() -> None:
    lim = _limiter(client_rate=5, client_concurrency=100)
    for _ in range(10):  # burst = 2 x rate
        lim.admit_client("10.0.0.1", 0.0).release()
    with pytest.raises(Limited) as refused:
        lim.admit_client("10.0.0.1", 0.0)
    assert refused.value.reason == "client_rate"
    assert refused.value.retry_after == pytest.approx(0.2)
    assert refused.value.retry_after_header == "1"
    lim.admit_client("10.0.0.2", 0.0).release()  # another client is not affected
    lim.admit_client("10.0.0.1", 0.2).release()  # one token refilled


def test_concurrency_counts_requests_in_flight_until_released() -> None:
    lim = _limiter(client_concurrency=2, client_rate=1000)
    a = lim.admit_client("c", 0.0)
    b = lim.admit_client("c", 0.0)
    with pytest.raises(Limited, match="client_concurrency"):
        lim.admit_client("c", 0.0)
    a.release()
    lim.admit_client("c", 0.0)  # a slot came free
    b.release()


def test_failed_authentications_lock_the_client_out_until_the_bucket_refills() -> None:
    lim = _limiter(auth_failures_per_min=6, client_rate=1000)
    for _ in range(6):
        lim.admit_client("guesser", 0.0).release()
        lim.auth_failed("guesser", 0.0)
    with pytest.raises(Limited) as refused:
        lim.admit_client("guesser", 1.0)
    assert refused.value.reason == "auth_failures"
    assert refused.value.retry_after == pytest.approx(9.0)  # one failure per 10 s
    lim.admit_client("guesser", 10.0).release()
    lim.admit_client("honest", 1.0).release()


def test_token_limits_hold_across_clients() -> None:
    lim = _limiter(token_rate=1, token_concurrency=1, client_rate=1000)
    first = lim.admit_client("a", 0.0)
    lim.admit_token(first, "crm-1", 0.0)
    second = lim.admit_client("b", 0.0)
    with pytest.raises(Limited, match="token_concurrency"):
        lim.admit_token(second, "crm-1", 0.0)
    first.release()
    lim.admit_token(second, "crm-1", 0.0)
    second.release()
    third = lim.admit_client("c", 0.0)
    with pytest.raises(Limited, match="token_rate"):  # burst of 2 used up
        lim.admit_token(third, "crm-1", 0.0)


def test_state_is_bounded_new_clients_share_the_overflow_entry() -> None:
    lim = Limiter(LimitConfig(client_rate=1, max_clients=3))
    for i in range(3):
        lim.admit_client(f"c{i}", 0.0).release()
    extra = lim.admit_client("rotating-1", 0.0)
    assert extra.client == OVERFLOW
    extra.release()
    lim.admit_client("rotating-2", 0.0).release()
    with pytest.raises(Limited):  # the overflow bucket (burst 2) is shared
        lim.admit_client("rotating-3", 0.0)
    lim.sweep(100.0)  # idle and full: forgotten
    assert lim.tracked == 0
    assert lim.admit_client("rotating-4", 100.0).client == "rotating-4"


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=300),
)
def test_a_client_never_gets_more_than_burst_plus_rate_times_time(
    rate: float, gaps: list[float]
) -> None:
    """Whatever the timing of its requests, the admitted count over any run is at
    most burst + rate x elapsed (the token bucket's promise)."""
    lim = _limiter(client_rate=rate, client_concurrency=10**6)
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        try:
            lim.admit_client("x", now).release()
            admitted += 1
        except Limited as lim_exc:
            assert lim_exc.retry_after > 0
    assert admitted <= 2 * rate + rate * now + 1e-6


def test_the_tarpit_holds_refused_requests_up_to_its_capacity() -> None:
    """Held answers wait (at most max_s); beyond capacity a refusal goes at once, so
    the caller can close the connection."""

    async def run() -> list[bool]:
        pit = Tarpit(capacity=2, max_s=0.05)
        held = [asyncio.create_task(pit.hold(1.0)) for _ in range(2)]
        await asyncio.sleep(0)  # both are waiting now
        assert pit.held == 2
        third = await pit.hold(1.0)
        results = [*(await asyncio.gather(*held)), third]
        assert pit.held == 0
        return results

    assert asyncio.run(run()) == [True, True, False]
