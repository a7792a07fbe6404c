"""Which records of the rules topic count (streams/rules_log.py): a pure function of the
records, their offsets and the broker's append times, so every reader agrees."""

from __future__ import annotations

import random

import orjson
import pytest

from state.rules import load_rules, load_rules_text
from streams.rules_log import (
    CLOCK_MARGIN_MS,
    RulesRecord,
    accept,
    decode_record,
    encode_record,
    parse_ts,
    record_key,
)

BASE = load_rules()
T = 1_800_000_000_000  # an append time


def rec(version: str, effective_from: int, toml: str | None = None, **kw: object) -> RulesRecord:
    fields: dict[str, object] = {
        "version": version,
        "label": f"label of {version}",
        "effective_from": effective_from,
        "published_by": "tester",
        "published_at": effective_from - 3000,
        "toml": toml
        if toml is not None
        else f'version = "{version}"\n[tiers]\naffluent = "600000"\n',
    }
    fields.update(kw)
    return RulesRecord(**fields)  # type: ignore[arg-type]


def msg(offset: int, r: RulesRecord, append: int = T) -> tuple[int, int, int, bytes]:
    return (0, offset, append, encode_record(r)[1])


def test_a_record_round_trips_and_its_key_names_the_publication() -> None:
    r = rec("2027.01", T + 5000)
    key, value = encode_record(r)
    assert key == b"2027.01@2027-01-15T08:00:05.000Z"
    assert key == record_key("2027.01", T + 5000)
    assert decode_record(value) == r
    with pytest.raises(ValueError, match="not a rules record"):
        decode_record(orjson.dumps({**orjson.loads(value), "extra": 1}))
    with pytest.raises(ValueError, match="not JSON"):
        decode_record(b"{")
    with pytest.raises(ValueError, match="tombstone"):
        decode_record(None)


def test_parse_ts_needs_an_offset_and_floors_to_the_millisecond() -> None:
    assert parse_ts("2027-01-01T00:00:00+08:00") == parse_ts("2026-12-31T16:00:00Z")
    assert parse_ts("2026-12-31T16:00:00.0009Z") == parse_ts("2026-12-31T16:00:00Z")
    with pytest.raises(ValueError, match="offset"):
        parse_ts("2027-01-01T00:00:00")


def test_accepted_versions_make_the_timeline_in_effective_order() -> None:
    a, b = rec("A", T + 50_000), rec("B", T + 10_000)  # B published later, effective first
    h = accept([msg(1, b, T + 1000), msg(0, a)], BASE)
    assert [(e.offset, e.status) for e in h.entries] == [(0, "accepted"), (1, "accepted")]
    assert [v.rules.version for v in h.timeline.versions] == ["B", "A"]
    assert h.timeline.at(T + 9_999) is BASE and h.timeline.at(T + 10_000).version == "B"
    assert h.in_force(T + 60_000) is h.entries[0] and h.find("B") is h.entries[1]


@pytest.mark.parametrize(
    ("effective", "status"),
    [
        (T - 1, "refused"),  # before its own append: backdated
        (T, "refused"),
        (T + CLOCK_MARGIN_MS - 1, "refused"),  # within the clock margin
        (T + CLOCK_MARGIN_MS, "accepted"),
    ],
)
def test_a_version_may_not_take_effect_before_the_broker_appended_it(
    effective: int, status: str
) -> None:
    h = accept([msg(0, rec("X", effective))], BASE)
    (e,) = h.entries
    assert e.status == status
    if status == "refused":
        assert e.reason.startswith("backdated") and h.timeline.versions == ()


def test_a_version_takes_effect_once_and_a_later_publication_wins_at_the_same_instant() -> None:
    h = accept(
        [
            msg(0, rec("A", T + 5000)),
            msg(1, rec("A", T + 9000, label="again")),  # the same version again
            msg(2, rec("B", T + 7000)),
            msg(3, rec("C", T + 7000)),  # the same instant as B: C supersedes it
        ],
        BASE,
    )
    assert [e.status for e in h.entries] == ["accepted", "refused", "superseded", "accepted"]
    assert "published before" in h.entries[1].reason
    assert "same instant" in h.entries[2].reason
    assert [(v.effective_from, v.rules.version) for v in h.timeline.versions] == [
        (T + 5000, "A"),
        (T + 7000, "C"),
    ]


def test_rules_that_do_not_load_are_refused_with_the_loaders_error() -> None:
    bad = rec("BAD", T + 5000, toml='version = "BAD"\n[tiers]\naffluent = "0"\n')
    typo = rec("TYPO", T + 6000, toml='[tierz]\naffluent = "1"\n')
    broken = rec("BROKEN", T + 7000, toml="[tiers\n")
    h = accept([msg(0, bad), msg(1, typo), msg(2, broken), (0, 3, T, b"nonsense")], BASE)
    assert [e.status for e in h.entries] == ["refused"] * 4
    assert "tiers.affluent" in h.entries[0].reason
    assert "unknown key 'tierz'" in h.entries[1].reason
    assert "not valid TOML" in h.entries[2].reason
    assert h.entries[3].record is None and h.timeline.versions == ()


def test_the_version_on_the_record_is_the_one_decisions_carry() -> None:
    """A versionless file's derived version hashes the defaults; a worker uses the
    version as published, so an upgrade that changes a default keeps it."""
    text = '[tiers]\naffluent = "650000"\n'
    derived = load_rules_text(text).version
    h = accept([msg(0, rec("2026.11+00000000", T + 5000, toml=text))], BASE)
    assert h.timeline.latest.version == "2026.11+00000000" != derived


def test_every_reader_agrees_whatever_order_it_gets_the_records_in() -> None:
    records = [
        msg(i, rec(f"V{i % 7}", T + random.Random(i).randrange(-3000, 60_000), label=str(i)))
        for i in range(40)
    ]
    first = accept(records, BASE)
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        again = accept(shuffled, BASE)
        assert [(e.offset, e.status, e.reason) for e in again.entries] == [
            (e.offset, e.status, e.reason) for e in first.entries
        ]
        assert repr(again.timeline) == repr(first.timeline)
    assert {e.status for e in first.entries} == {"accepted", "refused"}
