"""The Redis Function library without a server: its identity and the version policy."""

from __future__ import annotations

import re

import pytest

from streams.redis_functions import (
    FUNCTIONS,
    FUNCTIONS_VERSION,
    LIBRARY,
    library_digest,
    library_source,
    lua_fixes_missing,
)

#: Pinned with the version: when the library's source changes, this test fails until
#: the digest is updated here -- and, if any function's arguments or results changed,
#: FUNCTIONS_VERSION is bumped too (workers of the old release keep calling the old
#: library during a rolling upgrade; streams/redis_functions.py).
PINNED = (2, "b5c86d3448933c136297b6f4555044288cb3107358d15dcd3ac5354c5a75644d")


def test_the_library_is_the_pinned_one() -> None:
    assert (FUNCTIONS_VERSION, library_digest()) == PINNED, (
        "the Redis Function library changed: bump FUNCTIONS_VERSION if a function's "
        "arguments or results changed, then pin the new digest here"
    )


def test_the_source_names_its_version_everywhere_and_carries_its_digest() -> None:
    src = library_source()
    assert src.startswith(f"#!lua name={LIBRARY}\n")
    assert library_digest() in src and "@LIBRARY_DIGEST@" not in src
    registered = re.findall(r"function_name='([^']+)'|register_function\('([^']+)'", src)
    names = {a or b for a, b in registered}
    assert names == {name for name, _ro in FUNCTIONS}
    assert all(n.startswith(f"tierstream_v{FUNCTIONS_VERSION}_") for n in names)
    # the read-only ones are declared no-writes, so FCALL_RO (and replicas) accept them
    for name, read_only in FUNCTIONS:
        declared = re.search(rf"function_name='{name}'[^}}]*no-writes", src, re.S)
        assert bool(declared) is read_only, name


@pytest.mark.parametrize(
    ("version", "fixed"),
    [
        ("6.2.19", False),
        ("6.2.20", True),
        ("7.0.15", False),  # 7.0 got no fix upstream
        ("7.2.5", False),  # compose's old pin
        ("7.2.11", True),
        ("7.4.5", False),
        ("7.4.6", True),
        ("8.0.3", False),
        ("8.0.4", True),
        ("8.2.1", False),
        ("8.2.2", True),
        ("8.4.0", True),  # a line released after the fixes
        ("garbage", False),
    ],
)
def test_lua_fix_versions(version: str, fixed: bool) -> None:
    assert (lua_fixes_missing(version) is None) is fixed


def test_an_accepted_distribution_build_silences_exactly_its_version() -> None:
    warning = lua_fixes_missing("7.0.15")
    assert warning is not None and "TIERSTREAM_REDIS_ACCEPT_VERSION=7.0.15" in warning
    assert lua_fixes_missing("7.0.15", ("7.0.15",)) is None
    assert lua_fixes_missing("7.0.14", ("7.0.15",)) is not None
