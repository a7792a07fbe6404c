"""What the ``tierstream`` command imports before it runs a command.

Every command builds the whole parser (streams/cli.py), so a sub-command module that
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


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {OFFLINE_ONLY!r} if m in sys.modules))"
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
    code = "import streams.tools.report_render as r; r._pyplot()"
    assert _imported_after(code) == {"matplotlib", "PIL"}
