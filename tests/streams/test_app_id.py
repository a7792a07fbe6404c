"""The default app id derives from the topic prefix (issue 18): two deployments with
different prefixes on one cluster never share a consumer group, a state changelog or
transactional ids; an explicit TIERSTREAM_APP_ID still wins."""

from __future__ import annotations

from streams.cli import build_parser
from streams.cli.common import settings_from_args
from streams.settings import Settings, default_app_id
from streams.topics import changelog_topic


def test_without_a_prefix_the_app_id_is_tierstream() -> None:
    assert Settings().app_id == "tierstream" == Settings.from_env({}).app_id


def test_the_app_id_follows_the_topic_prefix() -> None:
    dev = Settings.from_env({"TIERSTREAM_TOPIC_PREFIX": "dev."})
    test = Settings.from_env({"TIERSTREAM_TOPIC_PREFIX": "test."})
    assert (dev.app_id, test.app_id) == ("dev.tierstream", "test.tierstream")
    assert changelog_topic(dev) == "dev.tierstream-customer-state-changelog"
    assert changelog_topic(dev) != changelog_topic(test)
    assert Settings(topic_prefix="x-").app_id == default_app_id("x-") == "x-tierstream"


def test_a_prefix_given_by_flag_moves_a_derived_app_id_along() -> None:
    args = build_parser().parse_args(["topics", "create", "--topic-prefix", "flag."])
    assert settings_from_args(args).app_id == "flag.tierstream"
    s = Settings.from_env({"TIERSTREAM_TOPIC_PREFIX": "env."})
    assert s.with_overrides(topic_prefix="flag.").app_id == "flag.tierstream"
    assert s.with_overrides(partitions=3).app_id == "env.tierstream"


def test_an_explicit_app_id_wins() -> None:
    env = {"TIERSTREAM_TOPIC_PREFIX": "dev.", "TIERSTREAM_APP_ID": "bank-tiering"}
    s = Settings.from_env(env)
    assert (s.app_id, s.app_id_derived) == ("bank-tiering", False)
    assert s.with_overrides(topic_prefix="other.").app_id == "bank-tiering"
    assert Settings(topic_prefix="p.", app_id="mine").app_id == "mine"
    derived = Settings.from_env({"TIERSTREAM_TOPIC_PREFIX": "dev."})
    assert derived.with_overrides(app_id="flagged", topic_prefix="x.").app_id == "flagged"
