"""The audit record of an erasure: who asked to erase which customer, when, and whether
anything was held.

Built by the pipeline (pure) from the request alone, so a replay of the same request
writes the same record: the ``event_id`` is derived from the request's, and ``ts`` is
the request's event time (when it was asked). It matches ``schemas/json/audit.schema.json``
(``action: "erasure"``) and holds nothing about the customer but the id.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from schemas.events import ErasureRequest
from schemas.timefmt import format_ts_utc

ACTION_ERASURE: Final = "erasure"


def erasure_event_id(request: ErasureRequest) -> str:
    """32 hex, a function of the request's id and customer: replays write the same id."""
    seed = f"erasure|{request.customer_id}|{request.event_id}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


def erasure_audit_record(request: ErasureRequest, held: bool) -> dict[str, Any]:
    """``result`` is ``ok`` when something was held and erased, ``not_found`` when the
    worker held nothing for the customer (never seen, or erased before)."""
    record: dict[str, Any] = {
        "event_id": erasure_event_id(request),
        "ts": format_ts_utc(request.ts),
        "principal": request.requested_by,
        "role": None,
        "action": ACTION_ERASURE,
        "customer_id": request.customer_id,
        "result": "ok" if held else "not_found",
        "cause_event_id": request.event_id,
    }
    if request.reason:
        record["reason"] = request.reason
    return record
