"""faust's Monitor sensor without its per-message bookkeeping.

faust calls every sensor four times per consumed message (message in, stream event
in and out, message out) and three times per produced record. Its default Monitor
keeps timings and counters for faust's own statistics pages, which tierstream does
not serve: operations read tierstream's Prometheus metrics (streams/metrics.py). In a
profile of the worker under a backlog those calls were about 5% of its CPU, for
figures nobody reads. This monitor keeps faust's commit, rebalance and end-offset
tracking (cheap, per batch) and drops the per-message and per-send work.
"""

from __future__ import annotations

from typing import Any

from faust.sensors import Monitor


class LeanMonitor(Monitor):
    """A faust Monitor whose per-message and per-send hooks do nothing."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        return None

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        return None

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        return None

    def on_table_get(self, table: Any, key: Any) -> None:
        return None

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        return None
