"""The HTTP views' input checks (the endpoints run against a real worker in
tests/integration/test_security_http.py)."""

from __future__ import annotations

import pytest

from streams.http.views import valid_customer_id


@pytest.mark.parametrize(
    ("cid", "ok"), [("C1", True), ("", False), ("x" * 129, False), ("a\nb", False)]
)
def test_customer_id_validation(cid: str, ok: bool) -> None:
    assert valid_customer_id(cid) is ok
