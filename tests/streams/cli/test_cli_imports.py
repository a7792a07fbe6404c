"""What the ``tierstream`` command imports before it runs a command.

Every command builds the whole parser (streams/cli/__init__.py), so a sub-command module that
imports a heavy library at its top makes every command pay for it, the worker
included: matplotlib (report) and scipy.optimize (clv fit) cost the worker about
0.4 s of start-up and 50 MiB of memory (measured 2026-12-03) before they moved into
the commands that use them. Checked in a fresh interpreter: this test process has
imported them already.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Libraries only the offline commands need (report charts, model fitting).
OFFLINE_ONLY = ("matplotlib", "scipy.optimize", "PIL")
#: The worker's framework: only ``tierstream worker`` needs it.
WORKER_ONLY = ("faust", "aiokafka", "mode")


def _imported_after(code: str, watched: tuple[str, ...] = OFFLINE_ONLY) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {watched!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import streams.cli; streams.cli.build_parser()",
        "import streams.cli, streams.worker.service",
    ],
    ids=["parser", "worker"],
)
def test_the_worker_does_not_import_the_offline_libraries(code: str) -> None:
    assert _imported_after(code) == set()


def test_the_report_still_imports_matplotlib_when_it_draws() -> None:
    """The probe can see an import (so the test above can fail)."""
    code = "import streams.tools.report_render as r; r.pyplot()"
    assert _imported_after(code) == {"matplotlib", "PIL"}


@pytest.mark.parametrize(
    "code",
    [
        "import streams.cli; streams.cli.build_parser()",
        # runs the command (against a Redis that is not there: it fails after its imports)
        "import contextlib, streams.cli as c\n"
        "with contextlib.suppress(Exception):\n"
        "    c.main(['profile', 'C1', '--redis-url', 'redis://127.0.0.1:1/0'])",
        "import streams.cli.report, streams.tools.report_render",
    ],
    ids=["parser", "profile", "report"],
)
def test_commands_other_than_the_worker_do_not_import_faust(code: str) -> None:
    """``tierstream profile`` prints JSON from Redis: it used to load all of faust."""
    assert _imported_after(code, WORKER_ONLY) == set()


def test_the_worker_imports_faust() -> None:
    """The probe can see faust (so the test above can fail)."""
    assert _imported_after("import streams.worker.service", WORKER_ONLY) == set(WORKER_ONLY)
