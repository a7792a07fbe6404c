"""The demo's live terminal view: what the worker is doing, second by second.

Why it reads only public surfaces: it scrapes the worker's ``/metrics`` (the same text
Prometheus reads), tails the output topics with a plain confluent-kafka consumer (no
consumer group commits, starting at the end) and reads the customer profiles from Redis
the way ``tierstream report`` does, so what it shows is exactly what an operator, the
downstream systems and the CRM see, and it works against any running worker.

    python -m streams.tools.live_view [--metrics-url URL] [--duration S] [--summary-json FILE]
                                      [--report-dir DIR] [--sim-start DATE] [--screenshot F.svg]

On a terminal it redraws a rich screen and reads single keys without blocking: ``r``
writes the management report into ``--report-dir``, ``q`` quits. Otherwise (CI, a pipe,
stdin not a terminal) it prints one status line per refresh and reads no keys.
``--duration`` stops it by itself; ``q``, Ctrl-C or SIGTERM stop it cleanly. Either way
it writes the final summary (``--summary-json``) and prints it. The panels that follow
the bank through simulated months are in streams/tools/live_panels.py, which is also
where new panels go.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import select
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import RedisError
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from state.decisions import TIERS
from state.rules import load_rules
from streams.settings import Settings
from streams.tools.live_panels import (
    DECISION_TOPICS,
    BasePanel,
    Samples,
    SimClock,
    default_panels,
    parse_ts_ms,
    trigger_kind,
)
from streams.tools.report import LoadedProfiles, Report, build_report, load_profiles

_LATEST = 8
_BAR_WIDTH = 12
_KEYS_HINT = "r: write the report · q: quit"
#: (topic, kind) pairs kept for "latest offers and alerts" (the newest of each kind).
_KINDS_KEPT = 64


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
    #: The newest offer or alert of each kind, most recent last.
    latest_by_kind: OrderedDict[tuple[str, str], dict[str, Any]] = field(
        default_factory=OrderedDict
    )
    #: The panels of streams/tools/live_panels.py (the extension point).
    panels: list[BasePanel] = field(default_factory=list)
    #: What the last `r` did (shown in the header).
    report_status: str = ""
    #: The keys the view reads ("" when stdin is not a terminal).
    keys_hint: str = ""
    #: The bank's time zone: decision times are shown in it (None: as written, UTC).
    tz: ZoneInfo | None = None
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
        for panel in self.panels:
            panel.on_metrics(samples)

    def apply_output(self, contract_topic: str, value: dict[str, Any]) -> None:
        self.seen[contract_topic] = self.seen.get(contract_topic, 0) + 1
        self.latest.setdefault(contract_topic, deque(maxlen=_LATEST)).appendleft(value)
        if contract_topic in ("offers", "alerts"):
            key = (contract_topic, str(value.get("kind")))
            self.latest_by_kind.pop(key, None)
            self.latest_by_kind[key] = value
            if len(self.latest_by_kind) > _KINDS_KEPT:
                self.latest_by_kind.popitem(last=False)
        for panel in self.panels:
            panel.on_output(contract_topic, value)

    def apply_profiles(self, loaded: LoadedProfiles) -> Report:
        report = build_report(loaded)
        for panel in self.panels:
            panel.on_profiles(loaded, report)
        return report

    def summary(self, urls: dict[str, str]) -> dict[str, Any]:
        panels = {p.key: p.summary() for p in self.panels}
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
            **panels,
            "last_error": self.last_error,
            # not the curl line: it may carry the demo's bearer token
            **{k: v for k, v in urls.items() if k != "customer_curl"},
        }


def _ints(d: dict[str, float]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(d.items()) if v}


class OutputTail:
    """Reads new records of the output topics (from their end when the view started).

    The view starts with the worker (deploy/demo), before its first decision, so it
    sees every decision of the run.
    """

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


def read_profiles(settings: Settings) -> LoadedProfiles:
    """Every profile under the deployment's Redis prefix, parsed as the report parses it."""
    from streams.redis_sink import connect

    async def load() -> LoadedProfiles:
        creds = settings.redis_credentials()
        client = connect(settings.redis_url, creds.password, creds.username)
        try:
            return await load_profiles(client, settings.redis_key_prefix)
        finally:
            await client.aclose()

    return asyncio.run(load())


class ReportWriter:
    """Writes the management report (the ``tierstream report`` code) in a thread, so the
    view keeps drawing while matplotlib works; ``status`` says how it went."""

    def __init__(self, settings: Settings, out: Path | None) -> None:
        self.settings = settings
        self.out = out
        self.status = ""
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.out is None:
            self.status = "no --report-dir: `tierstream report --out DIR` writes it"
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self.status = f"writing the report into {self.out} ..."
        self._thread = threading.Thread(target=self._write, name="report", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        from streams.audit import (
            ROLE_CLI,
            AuditUnavailable,
            audit_timeout,
            cli_principal,
            profiles_export,
            write_record,
        )
        from streams.tools.report_render import write_report

        assert self.out is not None
        try:
            loaded = read_profiles(self.settings)
            if not loaded.rows:
                self.status = "no profiles in Redis yet: no report"
                return
            # an export of every profile, audited first like `tierstream report`
            export = profiles_export(len(loaded.rows), cli_principal(), ROLE_CLI)
            write_record(self.settings, export, audit_timeout(self.settings))
            write_report(build_report(loaded), self.out, self.settings.redis_key_prefix)
        except AuditUnavailable as exc:
            self.status = f"report not written: {exc}"
            return
        except (RedisError, OSError) as exc:
            self.status = f"report failed: {exc}"
            return
        stamp = datetime.now().strftime("%H:%M:%S")
        self.status = f"report written {stamp}: {self.out / 'report.html'}"

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


class KeyReader:
    """Single keys from a terminal without blocking (cbreak mode: no Enter needed;
    Ctrl-C still interrupts). Reads nothing when stdin is not a terminal (CI, a pipe,
    a background job), so the view works the same without one."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._fd: int | None = None
        self._saved: Any = None

    def __enter__(self) -> KeyReader:
        try:
            import termios
            import tty

            fd = self._stream.fileno()
            if not os.isatty(fd):
                return self
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            self._fd = fd
        except (ImportError, OSError, ValueError, AttributeError, io.UnsupportedOperation):
            self._fd = None
        return self

    @property
    def active(self) -> bool:
        return self._fd is not None

    def read(self) -> str:
        """The keys pressed since the last call ("" if none or no terminal)."""
        fd = self._fd
        if fd is None:
            return ""
        keys = ""
        while select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 64)
            if not chunk:
                break
            keys += chunk.decode(errors="replace")
        return keys

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None and self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd = None


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
    for panel in _placed(state, "header"):
        head.add_row(panel.title, panel.renderable())
    head.add_row("metrics", urls["metrics_url"])
    head.add_row("a customer", urls["customer_curl"])
    head.add_row("health", urls["health_url"])
    if state.report_status:
        head.add_row("report", Text(state.report_status, style="bold"))

    flow = Table(show_header=False, box=None)
    flow.add_row("events consumed", f"{state.events:,}")
    flow.add_row("events/s", f"{state.events_per_s:,.0f} (peak {state.peak_events_per_s:,.0f})")
    flow.add_row("consumer lag", f"{state.lag:,}")
    flow.add_row("tier changes", f"{state.tier_changes:,}")
    flow.add_row("dead letters", Text(f"{state.dead_letters:,}", style="red"))
    flow.add_row("Redis backlog/errors", f"{state.redis_backlog:,} / {state.redis_errors:,}")

    tiers = Table(show_header=False, box=None)
    n = sum(state.tiers.values()) or 1
    for t in TIERS:
        c = state.tiers.get(t, 0)
        tiers.add_row(t, f"{c:,}", "█" * round(_BAR_WIDTH * c / n), f"{c / n:.1%}")

    # Panels (live_panels.py) go where their ``placement`` says: the header, after the
    # throughput and tiers, after the offers and alerts counters, or a row of their own.
    top = _row(
        Panel(flow, title="throughput"),
        Panel(tiers, title="customers per tier"),
        *(Panel(p.renderable(), title=p.title) for p in _placed(state, "top")),
    )
    middle = _row(
        Panel(_counts(state.offers, state.alerts), title="offers / alerts by kind"),
        *(Panel(p.renderable(), title=p.title) for p in _placed(state, "middle")),
    )
    bottom = _row(
        Panel(_latest_changes(state), title="latest tier changes"),
        Panel(_latest_alerts(state), title="latest offer and alert of each kind"),
    )
    subtitle = f"{state.keys_hint} · Ctrl-C stops" if state.keys_hint else "Ctrl-C stops"
    parts: list[Any] = [
        Panel(head, title="tierstream demo", subtitle=subtitle),
        top,
        middle,
        *(Panel(p.renderable(), title=p.title) for p in _placed(state, "row")),
        bottom,
        Panel(_latest_dead(state), title="latest dead letters (bad input, kept for replay)"),
    ]
    return Group(*parts)


def _placed(state: ViewState, where: str) -> list[BasePanel]:
    return [p for p in state.panels if p.placement == where]


def _row(*panels: Panel) -> Table:
    row = Table.grid(expand=True, padding=(0, 1))
    row.add_row(*panels)
    return row


def _counts(offers: dict[str, int], alerts: dict[str, int]) -> Table:
    """Offers and alerts side by side (two columns keep the screen short)."""
    t = Table(show_header=False, box=None, pad_edge=False)
    offer_rows = [(k, v) for k, v in offers.items()]
    alert_rows = [(k, v) for k, v in alerts.items()]
    for i in range(max(len(offer_rows), len(alert_rows))):
        row: list[Any] = []
        for rows, style in ((offer_rows, "green"), (alert_rows, "red")):
            if i < len(rows):
                k, v = rows[i]
                row += [Text(k, style=style), f"{v:,}"]
            else:
                row += ["", ""]
        t.add_row(*row)
    return t


def _when(state: ViewState, ts: object) -> str:
    """A decision's time in the bank's zone (as written when the zone is unknown)."""
    ms = parse_ts_ms(ts)
    if ms is None or state.tz is None:
        return str(ts or "")[:16]
    return datetime.fromtimestamp(ms / 1000, state.tz).strftime("%Y-%m-%d %H:%M")


def _latest_changes(state: ViewState) -> Table:
    t = Table("time", "customer", "change", box=None)
    for v in state.latest.get("tier-changes", ()):
        arrow = {"upgrade": "↑", "downgrade": "↓"}.get(v.get("direction", ""), "•")
        t.add_row(
            _when(state, v.get("ts")),
            str(v.get("customer_id", "")),
            f"{v.get('from_tier') or 'new'} {arrow} {v.get('to_tier')}",
        )
    return t


def _latest_alerts(state: ViewState) -> Table:
    """The newest offer and alert of each kind, newest first: a run makes far more of
    some kinds (large outflows) than of others, and each kind deserves a line."""
    t = Table("time", "what", "customer", "kind", "via", box=None)
    recent = list(reversed(state.latest_by_kind.items()))[:_LATEST]
    for (topic, kind), v in recent:
        what = (
            Text(f"alert/{v.get('severity')}", style="red")
            if topic == "alerts"
            else Text("offer", style="green")
        )
        via = trigger_kind(v) or ""
        t.add_row(_when(state, v.get("ts")), what, str(v.get("customer_id", "")), kind, via)
    return t


def _latest_dead(state: ViewState) -> Table:
    t = Table("source", "offset", "error", box=None)
    for v in list(state.latest.get("dead-letters", ()))[:4]:
        t.add_row(str(v.get("source_topic")), str(v.get("offset")), str(v.get("error"))[:90])
    return t


def status_line(state: ViewState) -> str:
    tiers = " ".join(f"{t}={state.tiers.get(t, 0)}" for t in TIERS)
    sim = ""
    for panel in state.panels:
        if isinstance(panel, SimClock):
            sim = f" simulated={panel.local_text().replace(' ', 'T')}"
    return (
        f"live: {time.monotonic() - state.started:5.0f}s events={state.events} "
        f"({state.events_per_s:.0f}/s){sim} tier_changes={state.tier_changes} "
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
    rules = load_rules(settings.rules_path)
    sim_start = sim_start_ms(args.sim_start, rules.timezone) if args.sim_start else None
    state = ViewState(panels=default_panels(rules, sim_start), tz=ZoneInfo(rules.timezone))
    topics: tuple[str, ...] = (*DECISION_TOPICS, "dead-letters")
    topics += tuple(t for p in state.panels for t in p.topics if t not in topics)
    tail = OutputTail(settings, topics)
    if tail.missing:
        state.last_error = f"output topics missing: {', '.join(tail.missing)}"
    console = Console()
    interactive = console.is_terminal and not args.plain
    deadline = state.started + args.duration if args.duration else None
    next_scrape = next_profiles = 0.0
    reporter = ReportWriter(settings, args.report_dir)
    live = Live(render(state, urls), console=console, auto_refresh=False) if interactive else None
    try:
        with live or contextlib.nullcontext(), KeyReader() as keys:
            if keys.active and interactive:
                state.keys_hint = _KEYS_HINT
            while deadline is None or time.monotonic() < deadline:
                tail.poll(state, timeout=0.2)
                pressed = keys.read().lower()
                if "q" in pressed:
                    break
                if "r" in pressed:
                    reporter.start()
                state.report_status = reporter.status
                now = time.monotonic()
                if args.profiles_every and now >= next_profiles and state.worker_up:
                    next_profiles = now + args.profiles_every
                    with contextlib.suppress(RedisError, OSError):  # shown as stale figures
                        state.apply_profiles(read_profiles(settings))
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
        reporter.join(30)
    if args.profiles_every:
        with contextlib.suppress(RedisError, OSError):  # the final figures
            state.apply_profiles(read_profiles(settings))
    if args.screenshot:
        save_screenshot(state, urls, args.screenshot)
    return state.summary(urls)


def sim_start_ms(day: str, timezone: str) -> int:
    """Epoch ms of local midnight of ``day`` (YYYY-MM-DD) in the rules' time zone."""
    from zoneinfo import ZoneInfo

    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), ZoneInfo(timezone))
    return int(start.timestamp() * 1000)


def save_screenshot(state: ViewState, urls: dict[str, str], path: Path, width: int = 150) -> None:
    """The screen as it stands, as an SVG (rich's own export): what `make demo-pictures`
    turns into the README's picture. The token in the curl line is masked."""
    masked = {**urls, "customer_curl": urls["customer_curl"].split(" -H ")[0]}
    if "Bearer" in urls["customer_curl"]:
        masked["customer_curl"] = (
            "curl -H 'Authorization: Bearer …' " + urls["customer_curl"].rsplit(" ", 1)[-1]
        )
    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=True)
    # what a terminal shows (the keys are read there), whatever ran this
    state.keys_hint = state.keys_hint or _KEYS_HINT
    console.print(render(state, masked))
    path.parent.mkdir(parents=True, exist_ok=True)
    console.save_svg(str(path), title="make demo")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streams.tools.live_view", description=__doc__)
    p.add_argument("--metrics-url", help="default: http://127.0.0.1:$TIERSTREAM_WEB_PORT/metrics")
    p.add_argument("--duration", type=float, help="stop after S seconds (default: Ctrl-C)")
    p.add_argument("--summary-json", type=Path, help="write the final summary here")
    p.add_argument("--refresh", type=float, default=1.0, help="seconds between redraws")
    p.add_argument(
        "--profiles-every",
        type=float,
        default=3.0,
        help="seconds between reads of the Redis profiles (RFM, churn risk); 0: never",
    )
    p.add_argument("--report-dir", type=Path, help="where `r` writes the management report")
    p.add_argument(
        "--sim-start",
        help="the simulated bank's first day (YYYY-MM-DD): shows the days covered",
    )
    p.add_argument("--screenshot", type=Path, help="at the end, save the screen as SVG here")
    p.add_argument("--customer", default="C0000001", help="customer id for the example URL")
    p.add_argument("--token", help="bearer token to show with the customer URL (demo only)")
    p.add_argument("--plain", action="store_true", help="status lines even on a terminal")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    p.add_argument("--topic-prefix", help="topic name prefix (env TIERSTREAM_TOPIC_PREFIX)")
    args = p.parse_args(argv)
    if args.metrics_url is None:
        port = Settings.from_env().web_port
        args.metrics_url = f"http://127.0.0.1:{port}/metrics"
    if args.sim_start is not None:
        try:
            date.fromisoformat(args.sim_start)
        except ValueError:
            p.error(f"--sim-start must be YYYY-MM-DD, got {args.sim_start!r}")
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
