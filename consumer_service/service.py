"""run_consumer: owns the service's AIOKafkaConsumer and its dead-letter producer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer_service.dead_letters import DeadLetterPublisher
from consumer_service.loop import Committer, PendingOffsets, RebalanceHandler, consume
from consumer_service.metrics import ConsumerMetrics
from consumer_service.processor import RecordProcessor
from consumer_service.sink import Sink, StreamSink
from shared.kafka.adapter import coordinator_known
from shared.kafka.connecting import started, stop_consumer, until_connected
from shared.kafka.dedupe import Duplicates
from shared.kafka.options import consumer_options, dedupe_reader_options
from shared.kafka.records import schema_ids
from shared.kafka.registry import SchemaRegistry, schema_registry
from shared.kafka.topics import ensure_topics_when_reachable
from shared.runtime.probes import observed
from shared.runtime.settings import Settings
from shared.runtime.tasks import StoppedError
from shared.runtime.tracing import RecordSpans

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

_log = logging.getLogger(__name__)


async def run_consumer(
    settings: Settings,
    stop: asyncio.Event,
    sink: Sink | None = None,
    tracer_provider: TracerProvider | None = None,
) -> int:
    """Consume the events topic until stop is set; return the number of records processed.

    The probes answer from the start. While Kafka cannot be reached the consumer keeps retrying,
    and joins once it can; a stop while it waits ends it at once. Spans go to `tracer_provider`
    when given, else to tracing.exporter's (flushed at the end).
    """
    kafka, config = settings.kafka, settings.consumer
    metrics, membership = ConsumerMetrics(), _Membership()
    reader = dedupe_reader_options(kafka, read_committed=False)
    duplicates = Duplicates(config.dedupe_records, config.dedupe_window_s, reader)
    async with contextlib.AsyncExitStack() as parts:
        spans = await parts.enter_async_context(
            observed(
                settings,
                config,
                "biometrics-consumer",
                metrics.registry,
                membership.ready,
                tracer_provider,
            )
        )
        try:
            await ensure_topics_when_reachable(stop, kafka, [kafka.topic, kafka.dead_letter_topic])
            dead_letters = await parts.enter_async_context(_dead_letters(settings, stop))
            registry = await parts.enter_async_context(schema_registry(settings))
            processor = _processor(
                settings, sink, dead_letters, metrics, registry, spans, duplicates
            )
            consumer, committer = await parts.enter_async_context(
                _member(settings, stop, processor, metrics, membership, duplicates)
            )
        except StoppedError:
            return 0
        _log.info("consumer started", extra={"topic": kafka.topic, "group_id": config.group_id})
        return await consume(
            consumer,
            processor,
            stop,
            committer,
            poll_timeout_ms=config.poll_timeout_ms,
            max_records=config.max_poll_records,
        )


@contextlib.asynccontextmanager
async def _dead_letters(
    settings: Settings, stop: asyncio.Event
) -> AsyncIterator[DeadLetterPublisher]:
    """The dead-letter producer, started once Kafka answers; flushed and stopped after."""

    async def connected() -> DeadLetterPublisher:
        publisher = DeadLetterPublisher(settings)  # a new client each try: a failed one is closed
        await publisher.start()
        return publisher

    publisher = await until_connected(stop, settings.kafka, "dead letters", connected)
    try:
        yield publisher
    finally:
        await publisher.close()


def _processor(
    settings: Settings,
    sink: Sink | None,
    dead_letters: DeadLetterPublisher,
    metrics: ConsumerMetrics,
    registry: SchemaRegistry | None,
    spans: RecordSpans | None,
    duplicates: Duplicates,
) -> RecordProcessor:
    config = settings.consumer
    return RecordProcessor(
        sink or StreamSink(),
        dead_letters,
        max_record_bytes=config.max_record_bytes,
        retries=config.handler_retries,
        retry_backoff_s=config.retry_backoff_ms / 1000,
        metrics=metrics,
        schema_ids=schema_ids(registry, config.retry_backoff_ms),
        spans=spans,
        duplicates=duplicates if duplicates.enabled else None,
    )


@contextlib.asynccontextmanager
async def _member(
    settings: Settings,
    stop: asyncio.Event,
    processor: RecordProcessor,
    metrics: ConsumerMetrics,
    membership: _Membership,
    duplicates: Duplicates,
) -> AsyncIterator[tuple[AIOKafkaConsumer, Committer]]:
    """A started consumer subscribed to kafka.topic in the group, once Kafka answers, and its
    committer. On the way out it leaves the group (auto-commit is off: that commits nothing)."""

    async def joined() -> tuple[AIOKafkaConsumer, Committer]:
        consumer = await started(AIOKafkaConsumer(**consumer_options(settings)), stop_consumer)
        committer = Committer(consumer, PendingOffsets(), metrics)

        async def forget(revoked: Collection[TopicPartition]) -> None:
            duplicates.forget(revoked)

        listener = RebalanceHandler(processor, committer, on_revoked=forget)
        consumer.subscribe([settings.kafka.topic], listener=listener)
        membership.listener, membership.consumer = listener, consumer
        return consumer, committer

    consumer, committer = await until_connected(stop, settings.kafka, "group", joined)
    try:
        yield consumer, committer
    finally:
        await stop_consumer(consumer)
        _log.info("consumer stopped", extra=vars(processor.counts))


class _Membership:
    """Readiness: in the group with an assignment (possibly empty) since the last rebalance."""

    def __init__(self) -> None:
        self.listener: RebalanceHandler | None = None
        self.consumer: AIOKafkaConsumer | None = None

    def ready(self) -> bool:
        if self.listener is None or not self.listener.assigned or self.consumer is None:
            return False
        return coordinator_known(self.consumer)
