"""The demo's live terminal view: what the worker is doing, second by second.

Why it reads only public surfaces: it scrapes the worker's ``/metrics`` (the same text
Prometheus reads) and tails the output topics with a plain confluent-kafka consumer
(no consumer group commits, starting at the end), so what it shows is exactly what an
operator and the downstream systems see, and it works against any running worker.

    python -m streams.tools.live_view [--metrics-url URL] [--duration S] [--summary-json FILE]

On a terminal it redraws a rich screen; otherwise (CI, a pipe) it prints one status
line per refresh. ``--duration`` stops it by itself; Ctrl-C or SIGTERM stop it cleanly.
Either way it writes the final summary (``--summary-json``) and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from state.decisions import TIERS
from streams.settings import Settings

Samples = dict[str, list[tuple[dict[str, str], float]]]
_LATEST = 8
_BAR_WIDTH = 30


def parse_metrics(text: str) -> Samples:
    """Prometheus text format -> sample name -> [(labels, value)]."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def total(samples: Samples, name: str) -> float:
    return sum(v for _labels, v in samples.get(name, []))


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    acc: dict[str, float] = {}
    for labels, v in samples.get(name, []):
        key = labels.get(label, "")
        acc[key] = acc.get(key, 0.0) + v
    return acc


@dataclass
class ViewState:
    """Everything on screen; also the summary written at the end."""

    started: float = field(default_factory=time.monotonic)
    worker_up: bool = False
    last_error: str = ""
    events: int = 0
    events_per_s: float = 0.0
    peak_events_per_s: float = 0.0
    tiers: dict[str, int] = field(default_factory=dict)
    tier_changes: int = 0
    offers: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    redis_backlog: int = 0
    redis_errors: int = 0
    lag: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    latest: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    _rate_window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=10))

    def apply_metrics(self, samples: Samples, now: float) -> None:
        self.worker_up = True
        self.events = int(total(samples, "tierstream_events_consumed_total"))
        self._rate_window.append((now, self.events))
        t0, e0 = self._rate_window[0]
        self.events_per_s = (self.events - e0) / (now - t0) if now > t0 else 0.0
        self.peak_events_per_s = max(self.peak_events_per_s, self.events_per_s)
        self.tiers = {
            t: int(v) for t, v in by_label(samples, "tierstream_customers", "tier").items()
        }
        self.tier_changes = int(total(samples, "tierstream_tier_changes_total"))
        self.offers = _ints(by_label(samples, "tierstream_offers_total", "kind"))
        self.alerts = _ints(by_label(samples, "tierstream_alerts_total", "kind"))
        self.dead_letter_reasons = _ints(
            by_label(samples, "tierstream_dead_letters_total", "reason")
        )
        self.dead_letters = sum(self.dead_letter_reasons.values())
        self.redis_backlog = int(total(samples, "tierstream_redis_backlog_profiles"))
        self.redis_errors = int(total(samples, "tierstream_redis_write_errors_total"))
        self.lag = int(total(samples, "tierstream_consumer_lag_messages"))

    def apply_output(self, contract_topic: str, value: dict[str, Any]) -> None:
        self.seen[contract_topic] = self.seen.get(contract_topic, 0) + 1
        self.latest.setdefault(contract_topic, deque(maxlen=_LATEST)).appendleft(value)

    def summary(self, urls: dict[str, str]) -> dict[str, Any]:
        return {
            "duration_s": round(time.monotonic() - self.started, 1),
            "worker_up": self.worker_up,
            "events": self.events,
            "events_per_s": round(self.events_per_s, 1),
            "peak_events_per_s": round(self.peak_events_per_s, 1),
            "tiers": self.tiers,
            "tier_changes": self.tier_changes,
            "offers": self.offers,
            "alerts": self.alerts,
            "dead_letters": self.dead_letters,
            "dead_letter_reasons": self.dead_letter_reasons,
            "redis_backlog": self.redis_backlog,
            "redis_write_errors": self.redis_errors,
            "consumer_lag": self.lag,
            "seen_on_output_topics": self.seen,
            "last_error": self.last_error,
            # not the curl line: it may carry the demo's bearer token
            **{k: v for k, v in urls.items() if k != "customer_curl"},
        }


def _ints(d: dict[str, float]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(d.items()) if v}


class OutputTail:
    """Reads new records of the output topics (from their end when the view started)."""

    def __init__(self, settings: Settings, topics: tuple[str, ...]) -> None:
        self._contract = {settings.topic(t): t for t in topics}
        self.consumer = Consumer(
            settings.confluent_config(
                **{
                    "group.id": f"tierstream-live-view-{time.time_ns()}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "latest",
                }
            )
        )
        tps: list[TopicPartition] = []
        meta = self.consumer.list_topics(timeout=10)
        self.missing = [t for t in self._contract if t not in meta.topics]
        for name in self._contract:
            if name in meta.topics:
                tps += [TopicPartition(name, p, OFFSET_END) for p in meta.topics[name].partitions]
        self.consumer.assign(tps)

    def poll(self, state: ViewState, timeout: float) -> None:
        for msg in self.consumer.consume(num_messages=500, timeout=timeout):
            if msg.error():
                state.last_error = str(msg.error())
                continue
            raw, topic = msg.value(), msg.topic()
            if raw is None or topic is None:
                continue  # a tombstone or a bare error record: nothing to show
            try:
                value = json.loads(raw)
            except (TypeError, ValueError):
                continue  # our outputs are JSON; anything else is not ours to show
            state.apply_output(self._contract[topic], value)

    def close(self) -> None:
        self.consumer.close()


def fetch_metrics(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body: bytes = r.read()
        return body.decode()


# -- rendering ---------------------------------------------------------------------------


def render(state: ViewState, urls: dict[str, str]) -> Group:
    """The whole screen as one rich renderable (pure: easy to test, easy to redraw)."""
    status = (
        Text("worker up", style="bold green")
        if state.worker_up
        else Text("waiting for the worker's /metrics ...", style="bold yellow")
    )
    head = Table.grid(padding=(0, 2))
    head.add_row(status, Text(f"running {time.monotonic() - state.started:,.0f}s"))
    head.add_row("metrics", urls["metrics_url"])
    head.add_row("a customer", urls["customer_curl"])
    head.add_row("health", urls["health_url"])

    flow = Table(show_header=False, box=None)
    flow.add_row("events consumed", f"{state.events:,}")
    flow.add_row("events/s", f"{state.events_per_s:,.0f} (peak {state.peak_events_per_s:,.0f})")
    flow.add_row("consumer lag", f"{state.lag:,}")
    flow.add_row("tier changes", f"{state.tier_changes:,}")
    flow.add_row("dead letters", Text(f"{state.dead_letters:,}", style="red"))
    flow.add_row("Redis backlog / errors", f"{state.redis_backlog:,} / {state.redis_errors:,}")

    tiers = Table(show_header=False, box=None)
    n = sum(state.tiers.values()) or 1
    for t in TIERS:
        c = state.tiers.get(t, 0)
        tiers.add_row(t, f"{c:,}", "█" * round(_BAR_WIDTH * c / n), f"{c / n:.1%}")

    top = Table.grid(expand=True, padding=(0, 1))
    top.add_row(
        Panel(flow, title="throughput"),
        Panel(tiers, title="customers per tier"),
        Panel(_counts(state.offers, state.alerts), title="offers / alerts by kind"),
    )
    bottom = Table.grid(expand=True, padding=(0, 1))
    bottom.add_row(
        Panel(_latest_changes(state), title="latest tier changes"),
        Panel(_latest_alerts(state), title="latest offers and alerts"),
    )
    return Group(
        Panel(head, title="tierstream demo", subtitle="Ctrl-C stops"),
        top,
        bottom,
        Panel(_latest_dead(state), title="latest dead letters (bad input, kept for replay)"),
    )


def _counts(offers: dict[str, int], alerts: dict[str, int]) -> Table:
    t = Table(show_header=False, box=None)
    for k, v in offers.items():
        t.add_row(Text("offer", style="green"), k, f"{v:,}")
    for k, v in alerts.items():
        t.add_row(Text("alert", style="red"), k, f"{v:,}")
    return t


def _latest_changes(state: ViewState) -> Table:
    t = Table("ts", "customer", "change", box=None)
    for v in state.latest.get("tier-changes", ()):
        arrow = {"upgrade": "↑", "downgrade": "↓"}.get(v.get("direction", ""), "•")
        t.add_row(
            str(v.get("ts", ""))[:19],
            str(v.get("customer_id", "")),
            f"{v.get('from_tier') or 'new'} {arrow} {v.get('to_tier')}",
        )
    return t


def _latest_alerts(state: ViewState) -> Table:
    t = Table("what", "customer", "kind", box=None)
    for v in list(state.latest.get("alerts", ()))[:4]:
        t.add_row(
            Text(f"alert/{v.get('severity')}", style="red"), v.get("customer_id"), v.get("kind")
        )
    for v in list(state.latest.get("offers", ()))[:4]:
        t.add_row(Text("offer", style="green"), v.get("customer_id"), v.get("kind"))
    return t


def _latest_dead(state: ViewState) -> Table:
    t = Table("source", "offset", "error", box=None)
    for v in list(state.latest.get("dead-letters", ()))[:4]:
        t.add_row(str(v.get("source_topic")), str(v.get("offset")), str(v.get("error"))[:90])
    return t


def status_line(state: ViewState) -> str:
    tiers = " ".join(f"{t}={state.tiers.get(t, 0)}" for t in TIERS)
    return (
        f"live: {time.monotonic() - state.started:5.0f}s events={state.events} "
        f"({state.events_per_s:.0f}/s) tier_changes={state.tier_changes} "
        f"offers={sum(state.offers.values())} alerts={sum(state.alerts.values())} "
        f"dead_letters={state.dead_letters} {tiers}"
    )


# -- main loop ---------------------------------------------------------------------------


class _Stop(Exception):
    pass


def _on_term(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_env().with_overrides(
        kafka_bootstrap=args.bootstrap, topic_prefix=args.topic_prefix
    )
    base = args.metrics_url.rsplit("/metrics", 1)[0]
    urls = {
        "metrics_url": args.metrics_url,
        "customer_url": f"{base}/customers/{args.customer}",
        "customer_curl": (
            f"curl -H 'Authorization: Bearer {args.token}' {base}/customers/{args.customer}"
            if args.token
            else f"curl {base}/customers/{args.customer}"
        ),
        "health_url": f"{base}/health",
    }
    state = ViewState()
    tail = OutputTail(settings, ("tier-changes", "offers", "alerts", "dead-letters"))
    if tail.missing:
        state.last_error = f"output topics missing: {', '.join(tail.missing)}"
    console = Console()
    interactive = console.is_terminal and not args.plain
    deadline = state.started + args.duration if args.duration else None
    next_scrape = 0.0
    live = Live(render(state, urls), console=console, auto_refresh=False) if interactive else None
    try:
        with live or contextlib.nullcontext():
            while deadline is None or time.monotonic() < deadline:
                tail.poll(state, timeout=0.2)
                now = time.monotonic()
                if now < next_scrape:
                    continue
                next_scrape = now + args.refresh
                try:
                    state.apply_metrics(parse_metrics(fetch_metrics(args.metrics_url)), now)
                    if state.last_error.startswith(args.metrics_url):
                        state.last_error = ""  # the worker was only starting
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    state.last_error = f"{args.metrics_url}: {exc}"
                if live is not None:
                    live.update(render(state, urls), refresh=True)
                else:
                    print(status_line(state), flush=True)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        with contextlib.suppress(KafkaException, RuntimeError):
            tail.close()
    return state.summary(urls)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streams.tools.live_view", description=__doc__)
    p.add_argument("--metrics-url", help="default: http://127.0.0.1:$TIERSTREAM_WEB_PORT/metrics")
    p.add_argument("--duration", type=float, help="stop after S seconds (default: Ctrl-C)")
    p.add_argument("--summary-json", type=Path, help="write the final summary here")
    p.add_argument("--refresh", type=float, default=1.0, help="seconds between redraws")
    p.add_argument("--customer", default="C0000001", help="customer id for the example URL")
    p.add_argument("--token", help="bearer token to show with the customer URL (demo only)")
    p.add_argument("--plain", action="store_true", help="status lines even on a terminal")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    p.add_argument("--topic-prefix", help="topic name prefix (env TIERSTREAM_TOPIC_PREFIX)")
    args = p.parse_args(argv)
    if args.metrics_url is None:
        port = Settings.from_env().web_port
        args.metrics_url = f"http://127.0.0.1:{port}/metrics"
    # Ctrl-C and SIGTERM end the view the same way: with its summary.
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    try:
        summary = run(args)
    except KafkaException as exc:
        print(f"live view: cannot reach Kafka: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(summary, indent=2, sort_keys=True)
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
