"""The topics as the settings configure them: created unless they exist, and known to every
broker, each partition with a leader, before anything polls or produces."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka.errors import KafkaError

from shared.kafka.adapter import (
    ClusterClient,
    TopicsCreated,
    TopicSpec,
    broker_ids,
    cluster_client,
    create_topics,
    topic_metadata,
)
from shared.kafka.connecting import until_connected
from shared.kafka.options import client_options
from shared.runtime.settings import KafkaSettings

__all__ = [
    "create_topics_and_wait",
    "ensure_topics",
    "ensure_topics_when_reachable",
]

_log = logging.getLogger(__name__)

_METADATA_POLL_S = 0.1


async def ensure_topics(kafka: KafkaSettings, names: Sequence[str]) -> list[str]:
    """Create the named topics unless they exist, as the settings say; return those created.

    A topic that exists with another partition count than kafka.topic_partitions is reported
    in the log, not silently accepted (changing it would move keys between partitions). On a
    cluster the brokers learn of a new topic a moment after the controller; a consumer that
    joins its group meanwhile may be assigned no partitions, and aiokafka asks again only after
    metadata_max_age_ms. So this waits until every broker knows the topics; after
    request_timeout_ms it goes on, with a warning.
    """
    specs = [
        TopicSpec(
            name, kafka.topic_partitions, kafka.topic_replication_factor, kafka.configs_for(name)
        )
        for name in names
    ]
    options = client_options(kafka)
    topics = await create_topics(options, specs)
    _report_partition_mismatches(kafka, topics.existing_partitions)
    unknown = await _unknown_after(options, names, kafka.request_timeout_ms / 1000)
    if unknown:
        _log.warning(
            "a broker does not know the topics yet; consumers may be assigned them late",
            extra={"topics": unknown},
        )
    return topics.created


async def create_topics_and_wait(
    options: Mapping[str, Any], specs: Sequence[TopicSpec], timeout_s: float = 30
) -> TopicsCreated:
    """Create the topics unless they exist; return once every broker knows each of them, every
    partition with a leader; TimeoutError, naming the topics still unknown, after timeout_s."""
    topics = await create_topics(options, specs)
    if unknown := await _unknown_after(options, [spec.name for spec in specs], timeout_s):
        raise TimeoutError(f"after {timeout_s:g} s a broker does not know the topics {unknown}")
    return topics


async def _unknown_after(
    options: Mapping[str, Any], names: Sequence[str], timeout_s: float
) -> list[str]:
    """Wait until every broker's metadata has the topics, each partition with a leader; return
    the sorted names of those some broker still does not know after timeout_s (none: [])."""
    unknown: set[str] = set(names)
    async with cluster_client(options) as client:
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    unknown = await _unknown_somewhere(client, names)
                    if not unknown:
                        break
                    await asyncio.sleep(_METADATA_POLL_S)
        except TimeoutError:
            pass
    return sorted(unknown)


async def _unknown_somewhere(client: ClusterClient, names: Sequence[str]) -> set[str]:
    """The topics some reachable broker has no metadata for, or a partition without a leader."""
    unknown: set[str] = set()
    for node_id in broker_ids(client):
        try:
            topics = await topic_metadata(client, node_id, names)
        except KafkaError:
            continue  # a node that is down answers no client either
        for topic in topics:
            partitions = topic["partitions"]
            if topic["error_code"] or not partitions or min(p["leader"] for p in partitions) < 0:
                unknown.add(topic["topic"])
    return unknown


def _report_partition_mismatches(kafka: KafkaSettings, existing: dict[str, int]) -> None:
    for topic, partitions in existing.items():
        if partitions != kafka.topic_partitions:
            _log.error(
                "topic exists with another partition count than configured",
                extra={
                    "topic": topic,
                    "partitions": partitions,
                    "configured_partitions": kafka.topic_partitions,
                },
            )


async def ensure_topics_when_reachable(
    stop: asyncio.Event, kafka: KafkaSettings, names: Sequence[str]
) -> None:
    """ensure_topics, retried until Kafka answers (StoppedError if stop is set first): a loop may
    start before the producer, and need not wait for a metadata refresh to see its topics."""
    await until_connected(stop, kafka, "topics", lambda: ensure_topics(kafka, names))
