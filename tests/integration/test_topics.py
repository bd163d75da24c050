"""Topics are created from the settings, idempotently, and a mismatch is reported."""

from __future__ import annotations

import logging
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.kafka.topics import ensure_topics
from tests.support.kafka import TopicFactory
from tests.support.settings import settings_for


async def _configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [(_, _, _, _, entries)] = response.resources
    return {name: value for name, value, *_ in entries}


async def test_topics_are_created_once_with_their_configured_configs(kafka_bootstrap: str) -> None:
    topic = f"test-{uuid4().hex}"
    kafka = settings_for(kafka_bootstrap, topic, "unused", partitions=4).kafka
    names = [kafka.topic, kafka.dead_letter_topic]
    assert sorted(await ensure_topics(kafka, names)) == sorted(names)
    assert await ensure_topics(kafka, names) == []
    events, dead_letters = [await _configs(kafka_bootstrap, name) for name in names]
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
