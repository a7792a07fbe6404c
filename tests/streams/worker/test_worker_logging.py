"""The worker's logging set-up: the level asked for is the level the loggers run at."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from streams.pipeline.records import BatchResult, InternalFailure
from streams.settings import Settings
from streams.worker.loop import log_internal_failures
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


def test_an_internal_dead_letter_is_logged_once_with_its_coordinates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What an operator needs to fix the bug and replay the record: where it is (topic,
    partition, offset), where it raised, and the traceback."""
    try:
        raise ZeroDivisionError("injected")
    except ZeroDivisionError as exc:
        error = exc
    result = BatchResult(internal=[InternalFailure("dev.balances", 3, 1234, "apply", error)])
    with caplog.at_level(logging.ERROR, logger="tierstream"):
        log_internal_failures(result)
    [record] = caplog.records
    assert "dev.balances[3]@1234" in record.getMessage()
    assert "apply" in record.getMessage() and "ZeroDivisionError: injected" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is error
