"""The worker's logging set-up: the level asked for is the level the loggers run at."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from streams.settings import Settings
from streams.worker.service import TierstreamService, faust_worker


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("loglevel", ["warning", "error", "info"])
@pytest.mark.usefixtures("restore_root_logger")
def test_debug_records_are_not_built_at_higher_levels(loglevel: str) -> None:
    """faust's spinner would put the root logger at DEBUG for warning/error, making
    every aiokafka debug call build a record (a quarter of the consumer thread)."""
    service = TierstreamService(Settings(store="memory://", redis_url="redis://127.0.0.1:1/0"))
    worker = faust_worker(service, loglevel)
    worker._setup_logging()
    for name in ("aiokafka.consumer.fetcher", "mode.timers", "faust"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    assert logging.getLogger().getEffectiveLevel() == logging.getLevelName(loglevel.upper())
