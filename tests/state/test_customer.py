"""CustomerState serialization: round trip, size, old formats, future formats."""

from __future__ import annotations

import uuid
from dataclasses import replace

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from schemas.events import InputEvent
from state.customer import FORMAT_VERSION, CustomerState, event_key
from tests.state.helpers import RULES, assess, at, bal, prof, run, tx

#: A state written by format v1 (dedup ids as plain strings; no "la"/"cc" keys).
V1_STATE = (
    b'{"v":1,"c":"cust-9","n":4,"u":1767427200000,"d":20456,'
    b'"a":{"acc1":[1767427200000,"b-2","650000.00","CNY","deposit",65000000]},'
    b'"w":[[20455,12345,1,0,0,0,1]],'
    b'"s":["b-1","b-2","t-1","p-1"],'
    b'"t":[20455,20455,1,12345,12345],'
    b'"h":[[20456,65000000,65000000]],'
    b'"p":["retail",true,"1990-05-05",1767225600000,"p-1"],'
    b'"T":["affluent",1767340800000],'
    b'"o":{"wealth_products":1767340800000}}'
)


def typical_customer() -> CustomerState:
    """Three accounts, a profile, an assessment, ~25 active days over 90 days."""
    events: list[InputEvent] = [prof(at(0)), assess(at(0), 55)]
    events += [bal(at(0), "300000", account="d1")]
    events += [bal(at(0), "20000", account="f1", product="fund", currency="USD")]
    events += [bal(at(0), "500000", account="l1", product="loan")]
    for i in range(30):
        day = i * 3
        events.append(
            tx(
                at(day),
                f"{100 + i * 37}.{i:02d}",
                channel="mobile" if i % 3 else "pos",
                type="card_payment",
                balance_after=f"{300000 - i * 100}",
                account="d1",
            )
        )
        if i % 7 == 0:
            events.append(
                bal(at(day, 20), f"{20000 + i}", account="f1", product="fund", currency="USD")
            )
    # production ids are UUIDs: use ids of that length so the size check is honest
    events = [replace(e, event_id=str(uuid.UUID(int=i * 7919 + 1))) for i, e in enumerate(events)]
    st, _ = run(events)
    return st


def test_round_trip_is_byte_identical_and_equal() -> None:
    st = typical_customer()
    b = st.to_bytes()
    back = CustomerState.from_bytes(b)
    assert back.to_bytes() == b
    assert back == st
    assert back.aum_fen == st.aum_fen
    assert (back.windows.count, back.windows.sum_fen) == (st.windows.count, st.windows.sum_fen)
    assert back.seen == st.seen


def test_typical_customer_is_under_1_kib() -> None:
    st = typical_customer()
    assert len(st.to_bytes()) < 1024, len(st.to_bytes())


def test_format_version_is_written() -> None:
    st, _ = run([bal(at(0), "1")])
    assert msgspec.msgpack.decode(st.to_bytes())[0] == FORMAT_VERSION == 4


def test_v1_state_loads_with_defaults_for_new_fields() -> None:
    st = CustomerState.from_bytes(V1_STATE)
    assert st.customer_id == "cust-9" and st.version == 4
    assert st.tier == "affluent" and st.aum_fen == 65_000_000
    assert st.last_alert == {} and st.churn_day < 0
    assert event_key("t-1") in st.seen and len(st.seen) == 4
    assert st.consent is True and st.birth_date == "1990-05-05"
    assert st.aum_days == {20456: [65_000_000, 65_000_000]}
    assert list(st.windows.buckets) == [20455] and st.windows.sum_fen == 12345
    assert st.windows.day_channels(20455) == [1, 0, 0, 0, 1, 0]
    assert st.windows.count == 2 and st.windows.preferred_channel() == "mobile"
    # and it keeps working: a redelivered v1-era event is still a duplicate
    from state.core import apply

    dup = bal(at(2), "1", event_id="b-2", customer="cust-9")
    assert apply(st, dup, RULES).status == "duplicate"
    o = apply(st, tx(at(3), "5", customer="cust-9"), RULES)
    assert o.status == "applied" and st.version == 5
    assert msgspec.msgpack.decode(st.to_bytes())[0] == FORMAT_VERSION


def test_missing_fields_get_defaults() -> None:
    st = CustomerState.from_bytes(b'{"v":2,"c":"x"}')
    assert st.version == 0 and st.tier is None and st.accounts == {}
    assert st.windows.count == 0 and not st.consent


def test_future_format_is_refused() -> None:
    future = msgspec.msgpack.encode([FORMAT_VERSION + 1, "x", *range(40)])
    with pytest.raises(ValueError, match="newer"):
        CustomerState.from_bytes(future)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1,2]",
        b'{"v":2}',
        b'{"v":0,"c":"x"}',
        b'{"v":4,"c":"x"}',  # v4 is never JSON
        b'{"v":2,"c":"x","a":{"k":[1,2,"x","CNY","deposit",3]}}',  # not a decimal
        b'{"v":3,"c":"x","T":["gold",1]}',  # not a tier
        b"\x92\x04\x05",  # a v4 array of the wrong types
        b"\x90",  # an empty array
        b"\xdc",  # a truncated array header
        b"\xc0",  # nil
        msgspec.msgpack.encode([3, "x"]),  # v4 layout, wrong version
        CustomerState("x").to_bytes()[:-3],  # truncated
    ],
)
def test_garbage_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        CustomerState.from_bytes(raw)


def test_empty_state_round_trips() -> None:
    st = CustomerState("x")
    assert CustomerState.from_bytes(st.to_bytes()) == st
    assert CustomerState.from_bytes(st.to_bytes()).customer_id == "x"


@settings(max_examples=200, deadline=None)
@given(
    hst.lists(
        hst.one_of(
            hst.tuples(hst.just("add"), hst.integers(0, 30), hst.integers(0, 2**64 - 1)),
            hst.tuples(hst.just("forget"), hst.integers(-1, 35), hst.just(0)),
        ),
        max_size=80,
    ),
    hst.integers(1, 12),
)
def test_dedup_set_is_the_v3_fifo_dict(ops, size) -> None:  # type: ignore[no-untyped-def]
    """The v4 dedup set (digest bytes + run-length days) against the v3 structure: a
    dict in insertion order, the oldest dropped beyond ``size``, a prefix dropped by
    day; serialized and restored at every step."""
    st = CustomerState("x")
    model: dict[int, int] = {}
    day = 0
    for op, d, key in ops:
        if op == "add":
            day = max(day, d)  # a customer's day never moves back
            st.day = day
            if key in model:
                assert st.has_seen(key)
                continue
            assert not st.has_seen(key)
            st.remember(key, size)
            model[key] = day
            if len(model) > size:
                del model[next(iter(model))]
        else:
            st.forget_seen_before(d)
            stale = []
            for k, kd in model.items():
                if kd >= d:
                    break
                stale.append(k)
            for k in stale:
                del model[k]
        assert st.seen == model
        st = CustomerState.from_bytes(st.to_bytes())
    for key in model:
        assert st.has_seen(key)


def test_a_key_straddling_two_entries_is_not_seen() -> None:
    st = CustomerState("x")
    st.remember(0x0102030405060708, 10)
    st.remember(0x090A0B0C0D0E0F10, 10)
    assert not st.has_seen(0x05060708090A0B0C)  # the middle 8 bytes of the two
    assert st.has_seen(0x090A0B0C0D0E0F10)


def test_an_older_v4_state_with_fewer_fields_loads_with_defaults() -> None:
    """Fields are only ever appended (with a default): a shorter v4 array is an older
    v4 state, and its missing fields take their defaults; a longer one is refused."""
    st = typical_customer()
    fields = msgspec.msgpack.decode(st.to_bytes())
    names = CustomerState.__struct_fields__
    assert fields[0] == FORMAT_VERSION and len(fields) == 1 + len(names)
    blank = CustomerState(st.customer_id)
    for keep in (2, 9, 11, len(names) - 1):
        old = CustomerState.from_bytes(msgspec.msgpack.encode(fields[: 1 + keep]))
        for i, name in enumerate(names):
            want = getattr(st if i < keep else blank, name)
            assert msgspec.msgpack.encode(getattr(old, name)) == msgspec.msgpack.encode(want)
    with pytest.raises(ValueError):
        CustomerState.from_bytes(msgspec.msgpack.encode([*fields, 0]))


def test_a_corrupt_dedup_set_fails_on_load() -> None:
    st = typical_customer()
    fields = msgspec.msgpack.decode(st.to_bytes())
    i = 1 + CustomerState.__struct_fields__.index("seen_keys")
    fields[i] = fields[i][:-3]
    with pytest.raises(ValueError, match="dedup"):
        CustomerState.from_bytes(msgspec.msgpack.encode(fields))
