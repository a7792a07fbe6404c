"""HTTP endpoints on faust's web server: customer lookup, health, metrics — with access control.

Profiles are read from Redis, not from the local table, so any worker answers for
any customer (a table only holds the partitions its worker owns).

Access (docs/security.md has the full matrix):

* ``GET /customers/{id}``: bearer token with role ``crm``; a profile is only sent once
  its audit record is acknowledged (else 503); denied, rate-limited and failed attempts
  are summed per client and audited once per interval (they serve nothing, so they
  never wait for the producer on the request path).
* ``GET /health``: open, but only ``status`` and ``assigned_partitions`` (what a load
  balancer or readiness probe needs); the details need role ``ops``.
* ``GET /metrics``: open by default (Prometheus scrapers rarely carry tokens; labels
  hold no customer data), ``TIERSTREAM_METRICS_PUBLIC=false`` requires role ``ops``.

Every request first passes the abuse limits (limits.py: per client and per token rate
and concurrency, failed authentications per client, a daily read quota per token):
over one, a 429 with ``Retry-After``. Errors are fixed strings: they never echo the
customer id, the profile or the token. faust's built-in table and router pages are
switched off here because they would serve raw customer state without any check.
"""

from __future__ import annotations

import logging
import time
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import faust
import redis.asyncio as aioredis
from faust.web import Request, Response, View
from prometheus_client import Counter

from streams.audit import AUDIT_TOPIC, AuditUnavailable, profile_read
from streams.http.access import AccessControl, Denied, WebSecurity
from streams.http.audit import AuditLog, DenialSummaries
from streams.http.limits import Admission, Limited, Limiter, Tarpit
from streams.http.tokens import ROLE_CRM, ROLE_OPS, Principal
from streams.metrics import Metrics
from streams.redis_sink import read_profile_counted
from streams.settings import Settings

log = logging.getLogger(__name__)

_MAX_CUSTOMER_ID: Final = 128
_REALM: Final = 'Bearer realm="tierstream"'


def valid_customer_id(customer_id: str) -> bool:
    """The ids the input contract allows: 1-128 characters, no control characters."""
    return 0 < len(customer_id) <= _MAX_CUSTOMER_ID and not any(
        ord(c) < 0x20 or ord(c) == 0x7F for c in customer_id
    )


class WorkerStatus(Protocol):
    """What ``/health`` shows of the worker (``TierstreamService`` provides it).

    A protocol rather than the service itself, so the HTTP layer imports nothing from
    streams/worker/ (tests/test_layers.py) and can be served by anything that answers.
    """

    @property
    def batches_done(self) -> int: ...

    def assigned_input_partitions(self) -> int: ...

    def recovering(self) -> bool: ...


def register_web(
    app: faust.App,
    settings: Settings,
    redis: aioredis.Redis,
    metrics: Metrics,
    worker: WorkerStatus,
) -> None:
    """Register the views, HTTPS, the limits and the audit topic on ``app`` (before it
    starts).

    The security configuration comes from ``settings.web`` (read with every other
    setting) and is checked here, before the app starts: a bad value stops start-up.
    """
    config = WebSecurity.from_settings(settings.web)
    store = config.token_store()
    access = AccessControl(config, store)
    limiter = Limiter(config.limits)
    tarpit = Tarpit()
    quota = config.limits.daily_read_quota
    _harden_faust_web(app, config)
    if not config.auth_required:
        log.warning("HTTP API authentication is DISABLED (TIERSTREAM_API_AUTH=disabled)")
    elif not store.configured:
        log.warning(
            "no API tokens configured (TIERSTREAM_API_TOKENS_FILE / TIERSTREAM_API_TOKENS): "
            "/customers answers 401 to every request"
        )
    log.info("web security: %s", config.describe())

    registry = metrics.registry
    api = metrics.api
    api.daily_quota.set(quota)
    requests = Counter(
        "tierstream_http_requests_total",
        "HTTP requests by endpoint and status code.",
        ["endpoint", "status"],
        registry=registry,
    )
    audit_topic = app.topic(
        settings.topic(AUDIT_TOPIC), key_serializer="raw", value_serializer="raw"
    )
    audit = AuditLog(audit_topic, config.audit_timeout_s, registry)
    denials = DenialSummaries(audit)

    async def write_denial_summaries() -> None:
        """The interval's denial summaries; idle limiter entries forgotten."""
        limiter.sweep(time.monotonic())
        api.roll_day(_utc_day())
        await denials.flush()

    app.timer(interval=config.audit_summary_interval_s)(write_denial_summaries)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def last_denial_summaries(sender: Any, **kwargs: Any) -> None:
        await denials.flush()

    def challenge(status: int) -> dict[str, str]:
        return {"WWW-Authenticate": _REALM} if status == 401 else {}

    def limited(lim: Limited) -> tuple[int, object, dict[str, str]]:
        api.limited.labels(lim.reason).inc()
        return 429, {"error": "too many requests"}, {"Retry-After": lim.retry_after_header}

    async def held(status: int, headers: dict[str, str]) -> dict[str, str]:
        """A 429 waits until its Retry-After (limits.py ``Tarpit``) before it is sent,
        off every limiter slot; when too many wait, it goes at once and closes."""
        if status == 429 and not await tarpit.hold(float(headers["Retry-After"])):
            return {**headers, "Connection": "close"}
        return headers

    def admit(request: Request) -> Admission | tuple[int, object, dict[str, str]]:
        """The client's admission, or the 429 to answer (steps 1-2 of limits.py)."""
        try:
            return limiter.admit_client(_client(request), time.monotonic())
        except Limited as lim:
            return limited(lim)

    def authenticate(request: Request, role: str) -> Principal | None:
        """``access.require``, counting a 401 against the client (limits.py step 2)."""
        try:
            return access.require(request, role)
        except Denied as d:
            if d.status == 401:
                limiter.auth_failed(_client(request), time.monotonic())
            raise

    class Customer(View):
        async def get(self, request: Request, customer_id: str) -> Response:
            admitted = admit(request)
            if isinstance(admitted, Admission):
                try:
                    status, body, headers = await self._answer(request, customer_id, admitted)
                finally:
                    admitted.release()
            else:
                status, body, headers = admitted
                if valid_customer_id(customer_id):
                    denials.add(_client(request), None, None, "rate_limited", customer_id)
            requests.labels("customer", str(status)).inc()
            headers = await held(status, headers)
            return self.json(body, status=status, headers=headers)

        async def _answer(
            self, request: Request, customer_id: str, admission: Admission
        ) -> tuple[int, object, dict[str, str]]:
            if not valid_customer_id(customer_id):
                return 400, {"error": "invalid customer id"}, {}
            client = admission.client
            try:
                who = authenticate(request, ROLE_CRM)
            except Denied as d:
                # Summed, not written one by one: a denial serves nothing, and a durable
                # write per made-up request was what a flood could exploit.
                holder = _safe_principal(access, request)
                denials.add(
                    client,
                    holder.name if holder else None,
                    holder.role if holder else None,
                    "denied" if d.status in (401, 403) else "error",
                    customer_id,
                )
                return d.status, {"error": d.error}, challenge(d.status)
            name, role = (who.name, who.role) if who else ("anonymous", None)
            try:
                limiter.admit_token(admission, name, time.monotonic())
            except Limited as lim:
                denials.add(client, name, role, "rate_limited", customer_id)
                return limited(lim)
            day = _utc_day()
            try:
                count, profile = await read_profile_counted(
                    redis, settings.redis_key_prefix, customer_id, name, day
                )
            except Exception as exc:  # Redis down or refusing: summed as an error
                log.warning("profile read failed: %s", type(exc).__name__)
                denials.add(client, name, role, "error", customer_id)
                return 503, {"error": "profile store unavailable"}, {}
            api.note_daily(name, day, count)
            if quota and count > quota:
                denials.add(client, name, role, "rate_limited", customer_id)
                return limited(Limited("daily_quota", _seconds_to_next_utc_day()))
            result = "ok" if profile else "not_found"
            try:
                await audit.record(profile_read(customer_id, result, name, role))
            except AuditUnavailable:
                return 503, {"error": "audit unavailable; read refused"}, {}
            api.profile_reads.labels(name).inc()
            if not profile:
                return 404, {"error": "customer not found"}, {}
            return 200, profile, {}

    class Health(View):
        async def get(self, request: Request) -> Response:
            admitted = admit(request)
            if not isinstance(admitted, Admission):
                status, body, headers = admitted
                requests.labels("health", str(status)).inc()
                headers = await held(status, headers)
                return self.json(body, status=status, headers=headers)
            try:
                return await self._answer(request)
            finally:
                admitted.release()

        async def _answer(self, request: Request) -> Response:
            redis_ok = True
            try:
                await redis.ping()
            except Exception:
                redis_ok = False
            status = 200 if redis_ok else 503
            body: dict[str, object] = {
                "status": "ok" if redis_ok else "degraded",
                "assigned_partitions": worker.assigned_input_partitions(),
            }
            try:
                details = access.has_role(request, ROLE_OPS)
            except Denied as d:
                if d.status == 401:
                    limiter.auth_failed(_client(request), time.monotonic())
                requests.labels("health", str(d.status)).inc()
                return self.json({"error": d.error}, status=d.status, headers=challenge(d.status))
            if details:
                body.update(
                    {
                        "redis": redis_ok,
                        "recovering": worker.recovering(),
                        "batches_processed": worker.batches_done,
                    }
                )
            requests.labels("health", str(status)).inc()
            return self.json(body, status=status)

    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            admitted = admit(request)
            if not isinstance(admitted, Admission):
                status, body, headers = admitted
                requests.labels("metrics", str(status)).inc()
                headers = await held(status, headers)
                return self.json(body, status=status, headers=headers)
            try:
                if not config.metrics_public:
                    try:
                        authenticate(request, ROLE_OPS)
                    except Denied as d:
                        requests.labels("metrics", str(d.status)).inc()
                        return self.json(
                            {"error": d.error}, status=d.status, headers=challenge(d.status)
                        )
                requests.labels("metrics", "200").inc()
                return self.bytes(
                    metrics.exposition(),
                    content_type="text/plain; version=0.0.4",
                )
            finally:
                admitted.release()

    app.page("/customers/{customer_id}")(Customer)
    app.page("/health")(Health)
    app.page("/metrics")(MetricsView)


def _client(request: Request) -> str:
    """The client's network address as the server saw it (aiohttp's ``remote``)."""
    return str(getattr(request, "remote", None) or "unknown")


def _utc_day(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def _seconds_to_next_utc_day(now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


def _safe_principal(access: AccessControl, request: Request) -> Principal | None:
    """The authenticated caller for the audit of a denial (None when unknown)."""
    try:
        return access.principal(request)
    except Denied:
        return None


def _harden_faust_web(app: faust.App, config: WebSecurity) -> None:
    """HTTPS when configured; faust's own table/router pages off.

    faust's ``/table/<name>/<key>`` would hand out a customer's raw state to anyone,
    and ``/router`` the partition map. Set here (before the web server starts) so the
    service is safe whatever kwargs built the app; the same values belong in the
    ``faust.App(...)`` call (see docs/security.md) and then this is a no-op.
    """
    wanted: dict[str, object] = {"web_tables_enabled": False, "web_router_enabled": False}
    ctx = config.ssl_context()
    if ctx is not None:
        wanted["web_ssl_context"] = ctx
    with warnings.catch_warnings():
        # faust warns when a setting is changed after being read; the web server
        # only reads these when it starts, after this runs.
        warnings.simplefilter("ignore")
        for key, value in wanted.items():
            setattr(app.conf, key, value)
