"""Abuse limits of the HTTP API on a real worker (real broker, real Redis).

A bounded flood of bad-token requests from one address gets 401s until the client's
failed-authentication budget is spent, then 429s with ``Retry-After``; none of it is
written to the audit topic one by one: the summaries count every attempt. Other
addresses (other loopback source addresses) are not affected. A token's daily read
quota, counted in Redis, ends in a 429 too, and a tokens file that is not UTF-8 gives
503s that are audited, not 500s.
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis

from streams.audit import AUDIT_TOPIC
from streams.http.tokens import add_token
from streams.redis_sink import profile_key
from streams.settings import Settings
from tests.integration.harness import REPO_ROOT, WorkerProcess, consume_all, wait_until

AUDIT_SCHEMA = json.loads((REPO_ROOT / "schemas" / "json" / "audit.schema.json").read_text())
FLOOD = 96


def _get(port: int, path: str, token: str | None, source: str) -> tuple[int, dict[str, str], bytes]:
    """One request from ``source`` (a loopback address: 127.0.0.x is a distinct client)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(source, 0))
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_limits_answer_429_under_a_bounded_flood_and_every_attempt_is_summed(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = service_settings
    tokens = tmp_path / "tokens.json"
    crm = add_token(tokens, "crm-frontend", "crm")
    for name, value in {
        "TIERSTREAM_API_AUTH": "required",
        "TIERSTREAM_API_TOKENS_FILE": str(tokens),
        "TIERSTREAM_API_CLIENT_RATE": "20",
        "TIERSTREAM_API_CLIENT_CONCURRENCY": "4",
        "TIERSTREAM_API_AUTH_FAILURES_PER_MIN": "12",
        "TIERSTREAM_API_DAILY_READ_QUOTA": "5",
        "TIERSTREAM_AUDIT_SUMMARY_INTERVAL": "1",
    }.items():
        monkeypatch.setenv(name, value)
    with redis.Redis.from_url(redis_url) as r:
        r.hset(
            profile_key(settings.redis_key_prefix, "C1"), mapping={"tier": "hnw", "version": "1"}
        )
    worker = make_worker()
    worker.start()
    port = settings.web_port

    # --- a bounded flood: 8 connections at once, bad tokens, made-up ids
    def bad(i: int) -> tuple[int, str | None]:
        status, headers, body = _get(port, f"/customers/X{i}", "tst_" + "z" * 43, "127.0.0.2")
        assert b"X%d" % i not in body
        return status, headers.get("Retry-After")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(bad, range(FLOOD)))
    statuses = Counter(status for status, _r in answers)
    print(f"flood of {FLOOD} bad-token requests: {dict(statuses)}")
    assert set(statuses) <= {401, 429}, statuses
    assert statuses[429] > FLOOD // 2, statuses  # the failure budget (12) is spent early
    assert statuses[401] <= 12 + 8, statuses  # budget + requests already in flight
    assert all(int(r or 0) >= 1 for status, r in answers if status == 429)

    # --- another address is not affected by that flood; its token reads until the quota
    reads = [_get(port, "/customers/C1", crm, "127.0.0.3")[0] for _ in range(5)]
    assert reads == [200] * 5
    status, headers, body = _get(port, "/customers/C1", crm, "127.0.0.3")
    assert status == 429 and b"hnw" not in body
    assert 1 <= int(headers["Retry-After"]) <= 86_400  # until the next UTC day
    daily = worker.metric_samples("tierstream_api_daily_reads")
    assert ({"principal": "crm-frontend"}, 6.0) in daily
    limited = {s[0]["reason"]: s[1] for s in worker.metric_samples("tierstream_api_limited_total")}
    assert limited["daily_quota"] == 1 and limited["auth_failures"] >= statuses[429] - 8

    # --- a tokens file that is not UTF-8: 503 (was a 500), and audited
    tokens.write_bytes(b"\xff\xfe not utf-8")
    status, _h, body = _get(port, "/customers/C1", crm, "127.0.0.4")
    assert status == 503 and b"hnw" not in body

    # --- the trail: reads one by one, every denied attempt counted in a summary
    def summaries() -> list[dict[str, Any]]:
        return [r["value"] for r in consume_all(settings, AUDIT_TOPIC) if "count" in r["value"]]

    def counted(client: str) -> int:
        return sum(v["count"] for v in summaries() if v["client"] == client)

    wait_until(lambda: counted("127.0.0.2") == FLOOD, 30, "every flood attempt in a summary")
    wait_until(lambda: counted("127.0.0.4") == 1, 30, "the token store failure in a summary")
    records = consume_all(settings, AUDIT_TOPIC)
    for r in records:
        jsonschema.validate(r["value"], AUDIT_SCHEMA)
    flood = [r["value"] for r in records if r["value"].get("client") == "127.0.0.2"]
    assert len(flood) <= 20, "summaries, not a record per attempt"
    by_result = Counter()
    for v in flood:
        by_result[v["result"]] += v["count"]
    assert by_result == {"denied": statuses[401], "rate_limited": statuses[429]}
    [store_error] = [r["value"] for r in records if r["value"].get("client") == "127.0.0.4"]
    assert store_error["result"] == "error"
    served = [r["value"] for r in records if "count" not in r["value"]]
    assert [(v["customer_id"], v["result"]) for v in served] == [("C1", "ok")] * 5
    quota = [v for v in summaries() if v["client"] == "127.0.0.3"]
    assert [(v["principal"], v["result"], v["count"]) for v in quota] == [
        ("crm-frontend", "rate_limited", 1)
    ]
    assert worker.proc is not None and worker.proc.poll() is None
