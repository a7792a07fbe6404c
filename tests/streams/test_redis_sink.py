"""The Redis side without a server: key layout and the ACL rules derived from it."""

from __future__ import annotations

import pytest

from streams.redis_functions import LIBRARY
from streams.redis_sink import redis_acl_rules
from streams.settings import SecurityConfigError


def test_redis_acl_rules_are_prefix_and_allow_list_only() -> None:
    rules = redis_acl_rules("tierstream:")
    assert rules[:4] == ["resetkeys", "~tierstream:*", "resetchannels", "-@all"]
    assert all(r.startswith("+") for r in rules[4:])
    assert "+flushdb" not in rules and "+keys" not in rules and "+eval" not in rules
    # no Lua of its own: no script command at all, and FCALL only of tierstream's functions
    bare = {r.lstrip("+").split("|")[0] for r in rules[4:]}
    assert not bare & {"eval", "evalsha", "eval_ro", "evalsha_ro", "script", "function"}
    calls = [r for r in rules if r.split("|")[0] in ("+fcall", "+fcall_ro")]
    assert calls and all(r.split("|")[1].startswith(LIBRARY + "_") for r in calls)
    with pytest.raises(SecurityConfigError):
        redis_acl_rules("tier*")
