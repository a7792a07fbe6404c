"""faust takes its settings from tierstream's configuration only, never from the environment.

faust reads environment variables that carry no tierstream prefix, in two ways:

* **Its Settings** (faust/types/settings/) read 79 unprefixed variables -- among them
  ``PRODUCER_ACKS``, ``PROCESSING_GUARANTEE``, ``BROKER_URL``, ``STORE``,
  ``WEB_PORT``, ``APP_DEBUG``, ``APP_WEB_STATS_ENABLED``, ``TOPIC_PARTITIONS`` and
  ``APP_ENV_PREFIX`` (which prefixes them all) -- and a variable *beats* the value the
  App is given in code: ``PRODUCER_ACKS=0`` left in a container's environment silently
  turned the acks=all that the audit trail relies on into fire-and-forget;
  ``APP_DEBUG=1`` mounted faust's stats pages on the web server. ``build_app`` gives
  the App ``env={}``, the mapping faust reads them from, so it reads none.
* **At import**, faust/__init__.py and faust/types/_env.py read ``FAUST_*``/``F_*``
  variables (``DEBUG``, ``DATADIR``, ``WEB_PORT``, ``WEB_BIND``, ``WEB_TRANSPORT``,
  ``LOOP`` -- which switches the event loop implementation --, ``BLOCKING_TIMEOUT``,
  ``CONSOLE_PORT``, ``STRICT``, ``WORKDIR``) and mode reads ``DEVLOG``, as module
  constants. ``tierstream worker`` removes them from its own environment before it
  first imports faust (``scrub_faust_environment``), and ``build_app`` and
  ``worker_without_spinner`` pass every value those constants would default.

This module imports nothing of faust, so it can run first.
tests/streams/worker/faust_glue/test_environment.py sets every one of them.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: Variables faust and mode read at import time: these prefixes, and these names.
IMPORT_TIME_PREFIXES = ("FAUST_", "F_")
IMPORT_TIME_NAMES = ("DEVLOG",)


def faust_variables(environ: MutableMapping[str, str]) -> list[str]:
    """The names in ``environ`` that faust or mode would read at import time."""
    return sorted(
        name
        for name in environ
        if name.startswith(IMPORT_TIME_PREFIXES) or name in IMPORT_TIME_NAMES
    )


def scrub_faust_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove what faust and mode would read at import time from this process's
    environment (or ``environ``); returns the names removed. It must run before faust
    is first imported: its module constants are set then."""
    env = os.environ if environ is None else environ
    names = faust_variables(env)
    for name in names:
        del env[name]
    return names
