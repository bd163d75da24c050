"""Topics are created from the settings, idempotently, and a mismatch is reported."""

from __future__ import annotations

import logging
from uuid import uuid4

import pytest

from shared.kafka.adapter import TopicSpec, describe_topics, topic_configs
from shared.kafka.topics import create_topics_and_wait, ensure_topics
from tests.support.kafka import TopicFactory
from tests.support.settings import settings_for


async def test_topics_are_created_once_with_their_configured_configs(kafka_bootstrap: str) -> None:
    topic = f"test-{uuid4().hex}"
    kafka = settings_for(kafka_bootstrap, topic, "unused", partitions=4).kafka
    names = [kafka.topic, kafka.dead_letter_topic]
    assert sorted(await ensure_topics(kafka, names)) == sorted(names)
    assert await ensure_topics(kafka, names) == []
    options = {"bootstrap_servers": kafka_bootstrap}
    events, dead_letters = [await topic_configs(options, name) for name in names]
    assert events["retention.ms"] == "604800000"
    assert events["min.insync.replicas"] == "1"
    assert dead_letters["retention.ms"] == "2419200000"


async def test_an_existing_topic_with_another_partition_count_is_reported(
    kafka_bootstrap: str, topic_factory: TopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await topic_factory(2)
    kafka = settings_for(kafka_bootstrap, topic, "unused", partitions=6).kafka
    with caplog.at_level(logging.ERROR, logger="shared.kafka.topics"):
        assert await ensure_topics(kafka, [topic]) == []
    # The error line docs/operating.md describes, found by its fields.
    [report] = [r for r in caplog.records if hasattr(r, "configured_partitions")]
    assert (report.partitions, report.configured_partitions) == (2, 6)  # type: ignore[attr-defined]


async def test_topics_created_and_awaited_have_every_partition_led_on_every_broker(
    kafka_bootstrap: str,
) -> None:
    name, options = f"test-{uuid4().hex}", {"bootstrap_servers": kafka_bootstrap}
    created = await create_topics_and_wait(options, [TopicSpec(name, 3, 1)])
    assert created.created == [name]
    [described] = await describe_topics(options, [name])
    assert sorted(p["partition"] for p in described["partitions"] if p["leader"] >= 0) == [0, 1, 2]
    again = await create_topics_and_wait(options, [TopicSpec(name, 3, 1)])
    assert (again.created, again.existing_partitions) == ([], {name: 3})
