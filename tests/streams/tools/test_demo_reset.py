"""The demo reset deletes topics and keys, so it must refuse anything but a demo.

Refusals happen before any client is made: the settings point at addresses where
nothing listens, so a check that came too late would hang or fail differently.
"""

from __future__ import annotations

import pytest

from streams.settings import Settings
from streams.tools.demo_reset import UnsafeReset, main, reset_demo

_NOWHERE = {"kafka_bootstrap": "127.0.0.1:1", "redis_url": "redis://127.0.0.1:1/0"}


@pytest.mark.parametrize(
    ("topic_prefix", "redis_prefix"),
    [
        ("", "tierstream:"),  # a real deployment's defaults
        ("demo-", "tierstream:"),  # the topics say demo, the keys do not
        ("prod-", "tierstream-demo:"),
        ("demo-", "demo*"),  # a glob would reach other keys
    ],
)
def test_anything_but_a_demo_is_refused(topic_prefix: str, redis_prefix: str) -> None:
    settings = Settings(topic_prefix=topic_prefix, redis_key_prefix=redis_prefix, **_NOWHERE)
    with pytest.raises(UnsafeReset):
        reset_demo(settings)


def test_the_command_says_why_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERSTREAM_REDIS_PREFIX", "tierstream:")
    assert main(["--topic-prefix", "demo-", "--bootstrap", "127.0.0.1:1"]) == 2
    assert "must both contain 'demo'" in capsys.readouterr().err
