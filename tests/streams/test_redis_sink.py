"""The Redis side without a server: key layout and the ACL rules derived from it."""

from __future__ import annotations

import pytest

from streams.redis_sink import redis_acl_rules
from streams.settings import SecurityConfigError


def test_redis_acl_rules_are_prefix_and_allow_list_only() -> None:
    rules = redis_acl_rules("tierstream:")
    assert rules[:4] == ["resetkeys", "~tierstream:*", "resetchannels", "-@all"]
    assert all(r.startswith("+") for r in rules[4:])
    assert "+flushdb" not in rules and "+keys" not in rules and "+eval" not in rules
    with pytest.raises(SecurityConfigError):
        redis_acl_rules("tier*")
