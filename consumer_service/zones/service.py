"""run_zones: owns the zone processor's transactional producer and its read_committed consumer.

Instances split the input partitions statically (instance i of n takes the partitions p with
p % n == i) instead of joining a consumer group, because aiokafka's
``send_offsets_to_transaction(offsets, group_id)`` carries no group generation (KIP-447 is not
supported): the broker cannot tell a current owner's offsets from a zombie's. Binding the
partitions to the transactional id ``<zones.group_id>-<instance>`` puts the fencing in the
transaction coordinator instead: the producer that starts last wins, and the older one's next
transactional request fails with ProducerFenced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumer_service.zones.transactions import (
    SeekableSource,
    TransactionalProducer,
    TransactionCounts,
    consume_transactionally,
)
from consumer_service.zones.transform import ZoneTransform
from shared.kafka import ensure_topics, retry_until_connected
from shared.kafka_options import transactional_producer_options, zone_consumer_options
from shared.settings import Settings
from shared.startup import StoppedError, unless_stopped

_log = logging.getLogger(__name__)


class NoPartitionsError(Exception):
    """This instance's number selects none of the input topic's partitions."""


def instance_partitions(partitions: Iterable[int], instance: int, instances: int) -> list[int]:
    """The partitions instance `instance` of `instances` reads: p % instances == instance."""
    return sorted(p for p in partitions if p % instances == instance)


@asynccontextmanager
async def zone_clients(
    settings: Settings, *, transactional: bool = True
) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaProducer]]:
    """Yield the started consumer, assigned this instance's partitions, and the producer.

    The producer starts first: initialising its transactional id fences an older producer with
    the same id and completes that one's last transaction, so the committed offsets the consumer
    then fetches include everything that was committed. With transactional=False the producer
    is only idempotent (for the at-least-once comparison of the throughput measurement).
    """
    topic, zones = settings.kafka.topic, settings.zones
    options = transactional_producer_options(settings, zones.transactional_id)
    if not transactional:
        del options["transactional_id"], options["transaction_timeout_ms"]
    producer = AIOKafkaProducer(**options)
    try:
        await producer.start()
        partitions = instance_partitions(
            await producer.partitions_for(topic), zones.instance, zones.instances
        )
        if not partitions:
            raise NoPartitionsError(
                f"zones.instance {zones.instance} of {zones.instances} has no partition of {topic}"
            )
        consumer = AIOKafkaConsumer(**zone_consumer_options(settings))
        try:
            await consumer.start()
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            yield consumer, producer
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


async def process_zones(
    settings: Settings,
    consumer: SeekableSource,
    producer: TransactionalProducer,
    stop: asyncio.Event,
) -> TransactionCounts:
    """Turn the assigned partitions into zone events, one transaction per batch, until stop."""
    return await consume_transactionally(
        consumer,
        producer,
        ZoneTransform.from_settings(settings),
        stop,
        group_id=settings.zones.group_id,
        poll_timeout_ms=settings.consumer.poll_timeout_ms,
        max_records=settings.consumer.max_poll_records,
        retry_backoff_s=settings.zones.retry_backoff_ms / 1000,
    )


async def run_zones(settings: Settings, stop: asyncio.Event) -> TransactionCounts:
    """Create the topics (waiting for Kafka if need be), then process until stop is set."""
    kafka = settings.kafka
    topics = [kafka.topic, kafka.dead_letter_topic, settings.zones.topic]
    try:
        await unless_stopped(
            stop, retry_until_connected(lambda: ensure_topics(kafka, topics), kafka, "topics")
        )
    except StoppedError:
        return TransactionCounts()
    async with zone_clients(settings) as (consumer, producer):
        _log.info(
            "zone processor started",
            extra={
                "topic": kafka.topic,
                "zones_topic": settings.zones.topic,
                "group_id": settings.zones.group_id,
                "transactional_id": settings.zones.transactional_id,
                "partitions": sorted(tp.partition for tp in consumer.assignment()),
            },
        )
        counts = await process_zones(settings, consumer, producer, stop)
    _log.info("zone processor stopped", extra=vars(counts))
    return counts
