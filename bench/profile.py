"""Where the worker's time goes: py-spy samples of the worker, summarised.

py-spy samples the running worker from outside (no code change, no restart) and
writes collapsed stacks (``--format raw``: ``frame;frame;... count`` per line) plus a
flame graph SVG. ``summarise`` turns the collapsed stacks into the top functions by
own and cumulative samples, and into cost buckets (faust machinery, decode, core,
state serialization, produce, Redis, ...) by the innermost frame that belongs to a
known component — the breakdown the optimization work needs.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

#: (bucket, test on (function, file)); the first rule matching the innermost frame
#: (walking from the leaf towards the root) decides a sample's bucket.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("state to_bytes (serialize)", re.compile(r"state/customer\.py::(to_bytes|_dump_\w+)$")),
    ("state from_bytes (deserialize)", re.compile(r"state/customer\.py::(from_bytes|_load_\w+)$")),
    ("profile fields (P(alive), CLV, RFM)", re.compile(r"state/profile\.py::")),
    ("core: state.core.apply + rules", re.compile(r"(^|/)state/")),
    ("decode + validate (schemas)", re.compile(r"(^|/)schemas/|processor\.py::decode$")),
    ("Redis write (sink, redis-py)", re.compile(r"redis_sink\.py|/redis/")),
    (
        "table get/put + changelog send",
        re.compile(r"streams/worker/faust_glue/table\.py|rocksdict|faust/stores/|faust/tables/"),
    ),
    ("metrics (prometheus_client)", re.compile(r"streams/metrics\.py|prometheus_client")),
    ("aligner (event-time merge)", re.compile(r"streams/pipeline/aligner\.py")),
    ("processor (outputs, orjson, bookkeeping)", re.compile(r"streams/pipeline/processor\.py")),
    (
        "produce (faust/aiokafka producer)",
        re.compile(
            r"aiokafka/producer|faust/transport/producer|faust/topics\.py|"
            r"faust/transport/drivers/aiokafka\.py::(send|_send)"
        ),
    ),
    ("agent adapter (streams/worker/)", re.compile(r"streams/worker/")),
    ("consume/fetch (aiokafka)", re.compile(r"aiokafka/")),
    ("faust/mode stream machinery", re.compile(r"(^|/)(faust|mode)/")),
    ("asyncio event loop", re.compile(r"asyncio/|selectors\.py")),
]


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _parse_frame(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m.group("func"), _short(m.group("file"))


@dataclass
class ProfileSummary:
    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)
    cumulative: Counter[str] = field(default_factory=Counter)
    buckets: Counter[str] = field(default_factory=Counter)

    def render(self, top: int = 15) -> str:
        n = max(self.samples, 1)
        lines = [f"{self.samples} samples (each ~= 1/rate s of a busy thread)", ""]
        lines.append("| cost bucket | samples | share |")
        lines.append("| --- | ---: | ---: |")
        for name, c in self.buckets.most_common():
            lines.append(f"| {name} | {c} | {c / n:.1%} |")
        for title, counter in (("own", self.own), ("cumulative", self.cumulative)):
            lines += ["", f"Top {top} functions by {title} samples:", ""]
            lines.append(f"| function | {title} | share |")
            lines.append("| --- | ---: | ---: |")
            for name, c in counter.most_common(top):
                lines.append(f"| `{name}` | {c} | {c / n:.1%} |")
        return "\n".join(lines)


def summarise(raw: Path) -> ProfileSummary:
    s = ProfileSummary()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [_parse_frame(f) for f in stack.split(";")]
        # py-spy puts the thread ("process 123:\"python\"" / thread id) first
        frames = [f for f in frames if f[1]]
        if not frames:
            continue
        s.samples += count
        names = [f"{fn} ({fi})" for fn, fi in frames]
        s.own[names[-1]] += count
        for name in set(names):
            s.cumulative[name] += count
        s.buckets[_bucket(frames)] += count
    return s


def _bucket(frames: list[tuple[str, str]]) -> str:
    keys = [f"{fi}::{fn}" for fn, fi in frames]
    # everything under profile_fields (P(alive), CLV) is the Redis view's cost, even
    # though it runs in state/ code that the core rule would otherwise claim
    if any(k.endswith("state/profile.py::profile_fields") for k in keys):
        return "profile fields (P(alive), CLV, RFM)"
    for key in reversed(keys):
        for name, rule in _RULES:
            if rule.search(key):
                return name
    return "other: " + (keys[-1].split("::")[0] if keys else "?")


class PySpy:
    """``py-spy record`` attached to a pid until ``stop()`` (SIGINT makes it write)."""

    def __init__(self, pid: int, out_dir: Path, rate: int = 100) -> None:
        exe = shutil.which("py-spy")
        if exe is None:
            raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
        out_dir.mkdir(parents=True, exist_ok=True)
        self.raw = out_dir / "worker.raw.txt"
        self.svg = out_dir / "worker.svg"
        self.log = (out_dir / "py-spy.log").open("ab")
        common = ["--pid", str(pid), "--rate", str(rate), "--nonblocking"]
        self.procs = [
            subprocess.Popen(
                [exe, "record", *common, "--format", "raw", "-o", str(self.raw)],
                stdout=self.log,
                stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [exe, "record", *common, "--format", "flamegraph", "-o", str(self.svg)],
                stdout=self.log,
                stderr=subprocess.STDOUT,
            ),
        ]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.log.close()
