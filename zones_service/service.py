"""run_zones: the zone processor as a member of its consumer group, exactly once.

The instance subscribes to kafka.topic in the group zones.group_id, read_committed, and owns a
transactional producer per assigned partition (PartitionProducers); process_zones handles each
batch in a transaction per partition.

On the way out, closing the producers and then the consumer each have CLOSE_SHARE of
zones.shutdown_timeout_s: a node that does not answer cannot hold the exit past its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contracts.zones import zone_json_schema
from shared.kafka.connecting import started, stop_consumer, until_connected
from shared.kafka.dedupe import Duplicates
from shared.kafka.options import (
    dedupe_reader_options,
    transactional_producer_options,
    zone_consumer_options,
)
from shared.kafka.records import schema_ids
from shared.kafka.registry import SchemaRegistry, frame_prefix, schema_registry, value_subject
from shared.kafka.topics import ensure_topics_when_reachable
from shared.runtime.probes import observed
from shared.runtime.settings import Settings
from shared.runtime.tasks import StoppedError
from zones_service.loop import process_zones
from zones_service.metrics import ZoneMetrics
from zones_service.partitions import ClosableProducer, PartitionProducers, ProducerFactory
from zones_service.transactions import BatchingProducer, TransactionCounts, transactional_id
from zones_service.transform import ZoneTransform

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

_log = logging.getLogger(__name__)

# The share of zones.shutdown_timeout_s closing the producers may take, and then the consumer
# (loop.FINISH_SHARE is the batch in hand's; what is left is a margin for the rest).
CLOSE_SHARE = 0.15


async def run_zones(
    settings: Settings, stop: asyncio.Event, tracer_provider: TracerProvider | None = None
) -> TransactionCounts:
    """Serve the probes, create the topics (waiting for Kafka), then process until stop.

    Spans go to `tracer_provider` when given, else to tracing.exporter's (flushed at the end).
    """
    kafka, zones = settings.kafka, settings.zones
    member = _Member(stop)
    metrics = ZoneMetrics(member.lag)
    async with contextlib.AsyncExitStack() as parts:
        spans = await parts.enter_async_context(
            observed(
                settings, zones, "biometrics-zones", metrics.registry, member.ready, tracer_provider
            )
        )
        try:
            await ensure_topics_when_reachable(
                stop, kafka, [kafka.topic, kafka.dead_letter_topic, zones.topic]
            )
            registry = await parts.enter_async_context(schema_registry(settings))
            prefix = await _value_prefix(settings, registry, stop)
        except StoppedError:
            return TransactionCounts()
        ids = schema_ids(registry, zones.retry_backoff_ms)
        transform = ZoneTransform.from_settings(settings, ids, prefix, spans)
        start_producer = partial(start_transactional_producer, settings)
        consumer, owner = await parts.enter_async_context(zone_consumer(settings, start_producer))
        member.join(consumer, owner)
        _log.info(
            "zone processor started",
            extra={"topic": kafka.topic, "zones_topic": zones.topic, "group_id": zones.group_id},
        )
        counts = await process_zones(
            consumer, owner, transform, stop, settings=settings, metrics=metrics, schema_ids=ids
        )
    _log.info("zone processor stopped", extra=vars(counts))
    return counts


async def start_transactional_producer(
    settings: Settings, partition: TopicPartition
) -> ClosableProducer:
    """The partition's transactional producer, started: any earlier owner's is fenced."""
    options = transactional_producer_options(
        settings, transactional_id(settings.zones.group_id, partition)
    )
    producer = BatchingProducer(AIOKafkaProducer(**options), output_topics(settings))
    return await started(producer)


def output_topics(settings: Settings) -> list[str]:
    """The topics the zone processor writes: the zone events and the dead letters."""
    return [settings.zones.topic, settings.kafka.dead_letter_topic]


@asynccontextmanager
async def zone_consumer(
    settings: Settings, start_producer: ProducerFactory
) -> AsyncIterator[tuple[AIOKafkaConsumer, PartitionProducers]]:
    """A started consumer subscribed in the zone group, and the producers of what it owns.

    On the way out the producers are closed, then the consumer leaves the group, each within
    CLOSE_SHARE of zones.shutdown_timeout_s (else it is left as it is: the process is exiting).
    """
    consumer = await started(AIOKafkaConsumer(**zone_consumer_options(settings)), stop_consumer)
    zones = settings.zones
    earliest = zones.auto_offset_reset == "earliest"
    duplicates = None
    if zones.dedupe_records > 0:
        reader = dedupe_reader_options(settings.kafka, read_committed=True)
        duplicates = Duplicates(zones.dedupe_records, zones.dedupe_window_s, reader)
    owner = PartitionProducers(consumer, start_producer, earliest=earliest, duplicates=duplicates)
    try:
        consumer.subscribe([settings.kafka.topic], listener=owner)
        yield consumer, owner
    finally:
        close_s = settings.zones.shutdown_timeout_s * CLOSE_SHARE
        try:
            await _within(close_s, "the partitions' producers", owner.close_all())
        finally:
            await _within(close_s, "the consumer", stop_consumer(consumer))


async def _within(timeout_s: float, what: str, closing: Awaitable[None]) -> None:
    """Await `closing` for timeout_s at most; past that, log a warning and go on."""
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            await closing
    except TimeoutError:
        if not deadline.expired():
            raise
        _log.warning(f"{what} did not close in time", extra={"timeout_s": timeout_s})


async def _value_prefix(
    settings: Settings, registry: SchemaRegistry | None, stop: asyncio.Event
) -> bytes:
    """The wire-format header of every zone event: none with the registry off; else the id of
    HeartRateZoneReached's schema, registered under `<zones.topic>-value` (waiting for the
    registry if need be). Refused: RegistryRefusedError."""
    if registry is None:
        return b""
    subject = value_subject(settings.zones.topic)
    level = settings.schema_registry.compatibility
    schema_id = await until_connected(
        stop,
        settings.kafka,
        "schema",
        lambda: registry.register(subject, zone_json_schema(), level),
    )
    _log.info("schema registered", extra={"subject": subject, "schema_id": schema_id})
    return frame_prefix(schema_id)


class _Member:
    """This instance in the zone group, once it has joined: its readiness and its lag."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self._joined: tuple[AIOKafkaConsumer, PartitionProducers] | None = None

    def join(self, consumer: AIOKafkaConsumer, owner: PartitionProducers) -> None:
        """Note the started consumer and the producers of what it owns."""
        self._joined = consumer, owner

    def ready(self) -> bool:
        """In the group with its assignment (possibly empty) taken over, and not stopping."""
        return self._joined is not None and self._joined[1].assigned and not self._stop.is_set()

    def lag(self) -> dict[TopicPartition, int | None]:
        """Per owned partition: its last stable offset minus the next offset to process."""
        if self._joined is None:
            return {}
        consumer, owner = self._joined
        lags: dict[TopicPartition, int | None] = {}
        for tp in list(owner.owned):
            end, done = consumer.last_stable_offset(tp), owner.offsets.get(tp)
            lags[tp] = None if end is None or done is None else max(0, end - done)
        return lags
