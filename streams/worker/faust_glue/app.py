"""Building the worker's faust App, and the App internals that takes.

What is private here (re-check on a faust-streaming upgrade): registering a topic
before start without an agent (``app.topics._topics``), raw serializers on a table
(``key_serializer``/``value_serializer`` are set by faust from model types only),
replacing the lazily created recovery service (``app.tables._recovery``), reading
whether recovery runs (``tables.recovery.in_recovery``) and dropping the Worker's
terminal spinner (``Worker.spinner``).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import faust
from faust.tables.recovery import Recovery

from streams.settings import Settings
from streams.worker.faust_glue.intake import (
    DirectInput,
    install_lean_drain,
    install_rewind_uncommitted,
)
from streams.worker.faust_glue.lean_monitor import LeanMonitor


class WorkerApp(faust.App):
    """faust's App with the worker's consumer intake (faust_glue/intake.py) installed at
    start, before faust's fetcher first drains the consumer."""

    #: The input topics delivered straight into their buffer (set before start).
    direct_input: DirectInput | None = None

    async def on_start(self) -> None:
        await super().on_start()
        install_lean_drain(self.consumer, self.direct_input)
        install_rewind_uncommitted(self.consumer)


def build_app(settings: Settings, stream_buffer_maxsize: int) -> faust.App:
    """The faust App for ``settings``: consumer group, table store, web server, producer.

    faust reads no environment variable for it (``env={}``; environment.py says why),
    and every setting faust would otherwise default from a ``FAUST_*`` variable is
    given here."""
    s = settings
    brokers = [f"kafka://{b.strip()}" for b in s.kafka_bootstrap.split(",") if b.strip()]
    return WorkerApp(
        s.app_id,
        env={},
        broker=brokers,
        broker_credentials=broker_credentials(s),
        store=s.store,
        datadir=s.data_dir,
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        topic_disable_leader=True,
        processing_guarantee=s.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        web_host=s.web_host,
        web_bind=s.web_host,
        web_port=s.web_port,
        web_transport="tcp://",
        web_in_thread=False,
        producer_acks=-1,
        producer_linger_ms=5,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=stream_buffer_maxsize,
        table_standby_replicas=s.standby_replicas,
        broker_session_timeout=s.session_timeout,
        broker_heartbeat_interval=min(3.0, s.session_timeout / 5),
        Monitor=LeanMonitor,
    )


def broker_credentials(settings: Settings) -> Any:
    """faust credentials from the librdkafka-style pass-through settings."""
    sec = settings.kafka_security
    proto = sec.get("security.protocol", "PLAINTEXT").upper()
    ctx: ssl.SSLContext | None = None
    if "SSL" in proto:
        ctx = ssl.create_default_context(cafile=sec.get("ssl.ca.location"))
        if sec.get("ssl.certificate.location"):
            ctx.load_cert_chain(
                sec["ssl.certificate.location"],
                sec.get("ssl.key.location"),
                sec.get("ssl.key.password"),
            )
    if proto.startswith("SASL"):
        return faust.SASLCredentials(
            username=sec.get("sasl.username"),
            password=sec.get("sasl.password"),
            mechanism=sec.get("sasl.mechanism", "PLAIN"),
            ssl_context=ctx,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


def direct_input(app: faust.App, direct: DirectInput) -> None:
    """Have the app's intake deliver ``direct``'s topics straight into its buffer."""
    if not isinstance(app, WorkerApp):
        raise TypeError("direct input needs the worker's app (build_app)")
    app.direct_input = direct


def register_topic(app: faust.App, topic: faust.TopicT) -> None:
    """Subscribe ``topic`` without an agent.

    Registered before start, where an agent would register its channel: the conductor
    subscribes what it holds once agents and tables have started.
    """
    app.topics._topics.add(topic)  # type: ignore[attr-defined]


def raw_table(app: faust.App, name: str, partitions: int) -> Any:
    """A faust table of opaque bytes, stored and changelogged as they are.

    faust derives table serializers from model types only; state is opaque bytes (the
    core's own versioned format), so store and changelog them raw.
    """
    table = app.Table(name, key_type=bytes, value_type=bytes, partitions=partitions)
    table.key_serializer = "raw"  # type: ignore[attr-defined]
    table.value_serializer = "raw"  # type: ignore[attr-defined]
    return table


def replace_recovery(app: faust.App, make: Callable[[Any], Recovery]) -> None:
    """Install ``make(tables)`` as the app's table recovery service, in place of faust's
    own (which faust creates lazily, on first use)."""
    tables: Any = app.tables
    if tables._recovery is not None:
        raise RuntimeError("faust's recovery service was created before tierstream's")
    tables._recovery = make(tables)


def in_recovery(app: faust.App) -> bool:
    """True while faust restores tables from their changelogs."""
    return bool(app.tables.recovery.in_recovery)  # type: ignore[attr-defined]


def worker_without_spinner(app: faust.App, loglevel: str) -> faust.Worker:
    """faust's Worker for ``app``, without its terminal spinner.

    At a log level of WARNING or above, faust's Worker installs a progress spinner on
    the root logger and sets the *root logger's* level to DEBUG so the spinner sees
    every record: from then on every ``logger.debug`` call in aiokafka, faust and mode
    builds a LogRecord that the handlers then drop. aiokafka logs per fetch request,
    so under load that was about a quarter of the consumer thread's time holding the
    GIL (py-spy, 2026-12-03). A service has no terminal to spin on anyway.
    """
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, debug=False)
    worker.spinner = None
    return worker
