"""``tierstream health``: is this container's worker serving? (the image's HEALTHCHECK).

Asks ``GET /health`` of the worker on ``TIERSTREAM_WEB_PORT``, over HTTPS when
``TIERSTREAM_WEB_TLS_CERT`` is set (the check used ``http://`` before, so turning TLS on
made every container unhealthy). The worker's own certificate is the only trust
anchor (``VERIFY_X509_PARTIAL_CHAIN``): the probe talks to 127.0.0.1, which the
certificate need not name, so the host name is not checked, but the answer must come
from a server holding that certificate's key. No token is sent: the open part of
``/health`` is enough. Exit codes: 0 healthy, 1 not.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
from typing import Any

from streams.cli.common import settings_from_args


def add_parser(sub: Any) -> None:
    h = sub.add_parser("health", help="probe this host's worker /health (container health check)")
    h.add_argument("--web-port", type=int, help="HTTP port (env TIERSTREAM_WEB_PORT)")
    h.add_argument("--timeout", type=float, default=4.0, help="seconds (default 4)")
    h.set_defaults(func=cmd_health)


def _host(bind: str) -> str:
    """Where to reach a server bound to ``bind`` from this host."""
    return "127.0.0.1" if bind in ("", "0.0.0.0") else ("::1" if bind == "::" else bind)


def cmd_health(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    web = settings.web
    host, port = _host(settings.web_host), settings.web_port
    conn: http.client.HTTPConnection
    try:
        if web.tls_cert:
            ctx = ssl.create_default_context(cafile=web.tls_cert)
            ctx.check_hostname = False
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            conn = http.client.HTTPSConnection(host, port, timeout=args.timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
        try:
            conn.request("GET", "/health")
            r = conn.getresponse()
            body = json.loads(r.read() or b"{}")
        finally:
            conn.close()
    except (OSError, ValueError, ssl.SSLError) as exc:
        print(f"tierstream health: {host}:{port}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    ok = r.status == 200 and isinstance(body, dict) and body.get("status") == "ok"
    print(f"tierstream health: {r.status} {body.get('status') if isinstance(body, dict) else ''}")
    return 0 if ok else 1
