"""run_zones: the zone processor as a member of its consumer group, exactly once.

The instance subscribes to kafka.topic in the group zones.group_id, read_committed, and owns a
transactional producer per assigned partition (PartitionProducers). Each batch is handled
partition by partition, each partition's records in one transaction of that partition's
producer; the partitions of a batch are committed concurrently.

When a transaction fails it is aborted and its partition is sought back to the batch's first
offset, which is the last offset committed: every earlier batch was committed, or was sought back
in the same way. It is remembered rather than fetched, because aiokafka cannot ask the group
coordinator for stable offsets (KIP-447's ``require_stable``), so a fetch just after a commit may
return older ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import ProducerFenced

from shared.kafka import ensure_topics, retry_until_connected, stop_consumer
from shared.kafka_options import transactional_producer_options, zone_consumer_options
from shared.probes import serving_probes
from shared.records import Batch, SchemaIds
from shared.registry import (
    SchemaRegistry,
    frame_prefix,
    value_subject,
)
from shared.settings import KafkaSettings, Settings
from shared.startup import StoppedError, unless_stopped
from shared.tracing import RecordSpans, exporting_spans
from shared.zones import zone_json_schema
from zones_service.metrics import ZoneMetrics
from zones_service.partitions import ClosableProducer, PartitionProducers, ProducerFactory
from zones_service.transactions import (
    TRANSACTION_COMMITTED,
    FencedError,
    TransactionCounts,
    Transform,
    abort,
    commit_partition,
    transactional_id,
)
from zones_service.transform import ZoneTransform

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

_log = logging.getLogger(__name__)

ZONES_STARTED = "zone processor started"


async def start_transactional_producer(
    settings: Settings, partition: TopicPartition
) -> ClosableProducer:
    """The partition's transactional producer, started: any earlier owner's is fenced."""
    options = transactional_producer_options(
        settings, transactional_id(settings.zones.group_id, partition)
    )
    producer = AIOKafkaProducer(**options)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer  # type: ignore[no-any-return]


@asynccontextmanager
async def zone_consumer(
    settings: Settings, start_producer: ProducerFactory
) -> AsyncIterator[tuple[AIOKafkaConsumer, PartitionProducers]]:
    """A started consumer subscribed in the zone group, and the producers of what it owns.

    On the way out the producers are closed, then the consumer leaves the group.
    """
    consumer = AIOKafkaConsumer(**zone_consumer_options(settings))
    earliest = settings.zones.auto_offset_reset == "earliest"
    owner = PartitionProducers(consumer, start_producer, earliest=earliest)
    try:
        await consumer.start()
        consumer.subscribe([settings.kafka.topic], listener=owner)
        yield consumer, owner
    finally:
        try:
            await owner.close_all()
        finally:
            await stop_consumer(consumer)


class Source(Protocol):
    """The part of AIOKafkaConsumer the loop uses."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Batch: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


async def process_zones(
    consumer: Source,
    owner: PartitionProducers,
    transform: Transform,
    stop: asyncio.Event,
    *,
    settings: Settings,
    metrics: ZoneMetrics | None = None,
    schema_ids: SchemaIds | None = None,
) -> TransactionCounts:
    """Poll and handle batches until stop is set; the batch in hand is finished first.

    With `schema_ids`, the new schema ids of each batch are looked up first (the transform
    dead-letters the unknown), the batch waiting while the registry is unreachable.
    """
    counts = TransactionCounts()
    group_id, backoff_s = settings.zones.group_id, settings.zones.retry_backoff_ms / 1000
    while not stop.is_set():
        batch = await consumer.getmany(
            timeout_ms=settings.zones.poll_timeout_ms,
            max_records=settings.zones.max_poll_records,
        )
        if owner.failure is not None:
            raise owner.failure
        if schema_ids is not None:
            await schema_ids.check([record for records in batch.values() for record in records])
        async with owner.lock:
            handled = [
                _handle(
                    consumer, owner.producers[tp], tp, records, transform, group_id, owner.offsets
                )
                for tp, records in batch.items()
                if records and _current(consumer, owner, tp, records[0].offset)
            ]
            results = await asyncio.gather(*handled)
        for records, produced in results:
            if produced is None:
                counts.aborted += 1
            else:
                counts.committed += 1
                counts.records += records
                counts.produced += produced
            if metrics is not None:
                _count(metrics, records, produced)
        if any(produced is None for _, produced in results):
            await _pause(stop, backoff_s)
    return counts


def _current(consumer: Source, owner: PartitionProducers, tp: TopicPartition, first: int) -> bool:
    """Whether records from `first` on are this owner's to process now. Records fetched before a
    reassignment start before the partition's committed offset: dropped, and the partition is
    sought back there (read_committed may skip offsets, so a later start is fine)."""
    if tp not in owner.producers:
        return False
    if first < owner.offsets[tp]:
        consumer.seek(tp, owner.offsets[tp])
        return False
    return True


async def _handle(
    consumer: Source,
    producer: ClosableProducer,
    tp: TopicPartition,
    records: Sequence[ConsumerRecord[Any, Any]],
    transform: Transform,
    group_id: str,
    offsets: dict[TopicPartition, int],
) -> tuple[int, int | None]:
    """(records, produced) once committed, or (records, None) once aborted and sought back."""
    try:
        produced = await commit_partition(producer, tp, records, transform, group_id)
    except ProducerFenced as error:
        raise FencedError(
            f"partition {tp.partition} of {tp.topic} belongs to another instance now (this one "
            "stalled past zones.session_timeout_ms, or a transaction outlived "
            "zones.transaction_timeout_ms)"
        ) from error
    except Exception as error:
        await abort(producer, error)
        consumer.seek(tp, records[0].offset)
        _log.warning(
            "transaction aborted; its records will be read again",
            extra={"partition": tp.partition, "records": len(records), "error": repr(error)},
        )
        return len(records), None
    offsets[tp] = records[-1].offset + 1
    _log.info(
        TRANSACTION_COMMITTED,
        extra={"partition": tp.partition, "records": len(records), "produced": produced},
    )
    return len(records), produced


def _count(metrics: ZoneMetrics, records: int, produced: int | None) -> None:
    if produced is None:
        metrics.aborted.inc()
        return
    metrics.committed.inc()
    metrics.records.inc(records)
    metrics.produced.inc(produced)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if stop is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


def _lag(consumer: AIOKafkaConsumer, owner: PartitionProducers) -> dict[TopicPartition, int | None]:
    """Per owned partition: its last stable offset minus the next offset to process."""
    lags: dict[TopicPartition, int | None] = {}
    for tp in list(owner.producers):
        end, done = consumer.last_stable_offset(tp), owner.offsets.get(tp)
        lags[tp] = None if end is None or done is None else max(0, end - done)
    return lags


async def _registered(
    registry: SchemaRegistry, topic: str, stop: asyncio.Event, kafka: KafkaSettings
) -> bytes:
    """Register HeartRateZoneReached's schema under `<zones.topic>-value`, waiting for the
    registry if need be; the wire-format header of its values. Refused: RegistryRefusedError."""
    subject = value_subject(topic)
    schema_id = await unless_stopped(
        stop,
        retry_until_connected(
            lambda: registry.register(subject, zone_json_schema()), kafka, "schema"
        ),
    )
    _log.info("schema registered", extra={"subject": subject, "schema_id": schema_id})
    return frame_prefix(schema_id)


async def run_zones(
    settings: Settings, stop: asyncio.Event, tracer_provider: TracerProvider | None = None
) -> TransactionCounts:
    """Serve the probes, create the topics (waiting for Kafka), then process until stop.

    Spans go to `tracer_provider` when given, else to tracing.exporter's (flushed at the end).
    """
    kafka, zones = settings.kafka, settings.zones
    member: list[tuple[AIOKafkaConsumer, PartitionProducers]] = []
    metrics = ZoneMetrics(lambda: _lag(*member[0]) if member else {})

    def ready() -> bool:
        """In the group with an assignment (possibly empty), and not stopping."""
        return bool(member) and member[0][1].assigned and not stop.is_set()

    async with serving_probes(zones.probe_host, zones.probe_port, metrics.registry, ready):
        topics = [kafka.topic, kafka.dead_letter_topic, zones.topic]
        try:
            await unless_stopped(
                stop, retry_until_connected(lambda: ensure_topics(kafka, topics), kafka, "topics")
            )
        except StoppedError:
            return TransactionCounts()
        start_producer = partial(start_transactional_producer, settings)
        async with contextlib.AsyncExitStack() as stack:
            provider = stack.enter_context(
                exporting_spans(settings.tracing, "biometrics-zones", tracer_provider)
            )
            spans = None if provider is None else RecordSpans(provider, kafka.topic, zones.group_id)
            schema_ids, prefix = None, b""
            if settings.schema_registry.url:
                registry = SchemaRegistry(settings.schema_registry)
                stack.push_async_callback(registry.close)
                schema_ids = SchemaIds(registry, max(zones.retry_backoff_ms / 1000, 0.1))
                try:
                    prefix = await _registered(registry, zones.topic, stop, kafka)
                except StoppedError:
                    return TransactionCounts()
            consumer, owner = await stack.enter_async_context(
                zone_consumer(settings, start_producer)
            )
            member.append((consumer, owner))
            _log.info(
                ZONES_STARTED,
                extra={
                    "topic": kafka.topic,
                    "zones_topic": zones.topic,
                    "group_id": zones.group_id,
                },
            )
            transform = ZoneTransform.from_settings(
                settings, schema_ids.unknown if schema_ids else (), prefix, spans
            )
            counts = await process_zones(
                consumer, owner, transform, stop,
                settings=settings, metrics=metrics, schema_ids=schema_ids,
            )  # fmt: skip
    _log.info("zone processor stopped", extra=vars(counts))
    return counts
