"""What the commands share: settings from flags, common flags, argument types, progress.

Every command reads its configuration from the environment (streams/settings.py) and
its flags override it (``settings_from_args``), so the same command works in a shell,
in systemd and in a container.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import IO

from streams.settings import Settings

#: Exit codes of the producing commands (simulate, replay).
EXIT_OK = 0
EXIT_KAFKA = 1
EXIT_INPUT = 2
#: profile, report: the audit record could not be written, so nothing was shown.
EXIT_AUDIT = 3
EXIT_INTERRUPTED = 130


def add_kafka_flags(p: argparse.ArgumentParser, partitions: bool = False) -> None:
    """--bootstrap and --topic-prefix (and --partitions), as every Kafka command has."""
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    p.add_argument("--topic-prefix", help="topic name prefix (env TIERSTREAM_TOPIC_PREFIX)")
    if partitions:
        p.add_argument("--partitions", type=int, help="partitions (env TIERSTREAM_PARTITIONS)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The environment's settings with every flag the command was given on top."""
    return Settings.from_env().with_overrides(
        kafka_bootstrap=getattr(args, "bootstrap", None),
        topic_prefix=getattr(args, "topic_prefix", None),
        partitions=getattr(args, "partitions", None),
        redis_url=getattr(args, "redis_url", None),
        rules_path=getattr(args, "rules", None),
        store=getattr(args, "store", None),
        web_port=getattr(args, "web_port", None),
        web_host=getattr(args, "web_host", None),
        app_id=getattr(args, "app_id", None),
        data_dir=getattr(args, "data_dir", None),
        processing_guarantee=getattr(args, "processing_guarantee", None),
        redis_key_prefix=getattr(args, "redis_prefix", None),
    )


class ProgressBar:
    """A one-line text progress bar on stderr, redrawn in place (no dependency)."""

    def __init__(self, total: int | None, stream: IO[str] | None = None, width: int = 30) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._start = time.monotonic()
        self._drawn = False

    def __call__(self, done: int) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        speed = f"{done / elapsed:,.0f} rec/s"
        if self.total:
            frac = min(done / self.total, 1.0)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"[{bar}] {frac:6.1%} {done:,}/{self.total:,} {speed}"
        else:
            text = f"{done:,} records {speed}"
        self.stream.write("\r" + text + " " * 4)
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value
