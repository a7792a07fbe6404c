"""The replay loader's checks before it produces anything."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import pytest
from confluent_kafka import Producer

from streams.settings import Settings
from streams.tools.loader import ProduceError, check_input_topics


def test_input_topics_just_created_are_waited_for_then_missing_ones_named() -> None:
    """A broker learns of topics just created a little later: the check asks again
    until its timeout, and only then names what is missing."""
    settings = Settings(topic_prefix="p.")
    everything = {t: object() for t in settings.input_topics}
    answers = [SimpleNamespace(topics={}), SimpleNamespace(topics=everything)]
    producer = mock.create_autospec(Producer, instance=True, spec_set=True)
    producer.list_topics.side_effect = lambda timeout: answers.pop(0)
    check_input_topics(producer, settings, timeout=5)
    assert producer.list_topics.call_count == 2

    producer.list_topics.side_effect = lambda timeout: SimpleNamespace(topics={})
    with pytest.raises(ProduceError, match="input topics missing"):
        check_input_topics(producer, settings, timeout=0.6)
