"""``tierstream backtest`` reaches exactly the tiers live workers reach, under each rule
set (issue 21, "Done when", second item).

One input (the simulator's bank, bad records, duplicates and late deliveries included)
on the real broker; a worker under the packaged rules and another deployment (own
consumer group, changelog and Redis keys) under a draft with other floors and band,
each as users run it; then the backtest reads the same input topics
(``--from-topics``' reader) with both rule sets. Every customer's tier in each worker's
Redis profile must equal the backtest's under that rule set, and the migration matrix
must be the pairs of the two workers' tiers.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from state.rules import load_rules
from streams.redis_sink import profile_key
from streams.settings import Settings
from streams.tools.backtest import messages_from_topics, run_backtest
from streams.tools.simulator import SimConfig, Simulator
from streams.topics import changelog_topic, create_topics
from tests.integration.harness import WorkerProcess, free_port, produce, wait_caught_up

DRAFT = (
    'version = "draft-it"\n[tiers]\naffluent = "650000"\nhnw = "1200000"\ndowngrade_band = "0.05"\n'
)


def _tiers(settings: Settings, customers: list[str]) -> dict[str, str]:
    r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        out = {}
        for cid in customers:
            tier = r.hget(profile_key(settings.redis_key_prefix, cid), "tier")
            if tier:
                out[cid] = str(tier)
        return out
    finally:
        r.close()


@pytest.mark.timeout(600)
def test_backtest_tiers_equal_live_workers_under_each_rule_set(
    service_settings: Settings,
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = service_settings
    sim = Simulator(SimConfig(customers=300, seed=21, bad_share=0.01))
    records = [(r.topic, r.key, r.value) for r in sim.records(limit=6000)]
    produce(settings, records)
    draft_path = tmp_path / "draft.toml"
    draft_path.write_text(DRAFT)

    base_worker = make_worker("base")
    draft_settings = settings.with_overrides(
        app_id=f"{settings.app_id}-draft",
        redis_key_prefix=f"{settings.redis_key_prefix}draft:",
        rules_path=str(draft_path),
        web_port=free_port(),
    )
    draft_worker = make_worker(
        "draft",
        app_id=draft_settings.app_id,
        redis_key_prefix=draft_settings.redis_key_prefix,
        rules_path=str(draft_path),
        web_port=draft_settings.web_port,
    )
    try:
        create_topics(draft_settings)  # its own changelog; the rest exists
        base_worker.start()
        draft_worker.start()
        wait_caught_up(settings, 120, "the base worker to commit all input", base_worker)
        wait_caught_up(draft_settings, 120, "the draft worker to commit all input", draft_worker)
        base_worker.stop()
        draft_worker.stop()

        customers = sorted({k.decode() for _t, k, _v in records if k})
        live_base = _tiers(settings, customers)
        live_draft = _tiers(draft_settings, customers)
        bt = run_backtest(
            messages_from_topics(settings), load_rules(None), load_rules(str(draft_path))
        )
        assert bt.new.tiers != bt.baseline.tiers  # the draft moves someone
        assert bt.baseline.tiers == live_base
        assert bt.new.tiers == live_draft
        matrix = {(a, b): n for a, b, n in bt.migration()}
        live_pairs = Counter((live_base[c], live_draft[c]) for c in live_base if c in live_draft)
        assert matrix == dict(live_pairs)
    finally:
        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
        for fut in admin.delete_topics(
            [changelog_topic(draft_settings)], operation_timeout=30
        ).values():
            with contextlib.suppress(Exception):
                fut.result()
