"""run_consumer: owns the service's AIOKafkaConsumer and its dead-letter producer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer

from consumer_service.dead_letters import DeadLetterPublisher
from consumer_service.loop import Committer, PendingOffsets, RebalanceHandler, consume
from consumer_service.metrics import ConsumerMetrics
from consumer_service.processor import RecordProcessor
from consumer_service.sink import Sink, StreamSink
from shared.aiokafka_adapter import coordinator_known
from shared.kafka import ensure_topics, retry_until_connected, stop_consumer
from shared.kafka_options import consumer_options
from shared.probes import serving_probes
from shared.records import SchemaIds
from shared.registry import SchemaRegistry
from shared.settings import Settings
from shared.startup import StoppedError, unless_stopped
from shared.tracing import RecordSpans, exporting_spans

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

_log = logging.getLogger(__name__)

# Logged once the consumer has joined its group: other processes (tests, the benchmark) wait for it.
CONSUMER_STARTED = "consumer started"


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
    kafka, consumer_settings = settings.kafka, settings.consumer
    metrics, membership = ConsumerMetrics(), _Membership()
    async with contextlib.AsyncExitStack() as resources:
        provider = resources.enter_context(
            exporting_spans(settings.tracing, "biometrics-consumer", tracer_provider)
        )
        group_id = consumer_settings.group_id
        spans = None if provider is None else RecordSpans(provider, kafka.topic, group_id)
        await resources.enter_async_context(
            serving_probes(
                consumer_settings.probe_host,
                consumer_settings.probe_port,
                metrics.registry,
                membership.ready,
            )
        )
        try:
            # Creating the topics here too lets the consumer start first, without waiting for
            # a metadata refresh to see them.
            topics = [kafka.topic, kafka.dead_letter_topic]
            await unless_stopped(
                stop, retry_until_connected(lambda: ensure_topics(kafka, topics), kafka, "topics")
            )
            dead_letters = await unless_stopped(
                stop, retry_until_connected(lambda: _started(settings), kafka, "dead letters")
            )
            resources.push_async_callback(dead_letters.close)
            registry = None
            if settings.schema_registry.url:
                registry = SchemaRegistry(settings.schema_registry)
                resources.push_async_callback(registry.close)
            processor = RecordProcessor(
                sink or StreamSink(),
                dead_letters,
                max_record_bytes=consumer_settings.max_record_bytes,
                retries=consumer_settings.handler_retries,
                retry_backoff_s=consumer_settings.retry_backoff_ms / 1000,
                metrics=metrics,
                schema_ids=SchemaIds(registry, consumer_settings.retry_backoff_ms / 1000),
                spans=spans,
            )
            subscribe = partial(_subscribed, settings, processor, metrics, membership)
            consumer, committer = await unless_stopped(
                stop, retry_until_connected(subscribe, kafka, "group")
            )
        except StoppedError:
            return 0
        resources.push_async_callback(_leave, consumer, processor)
        _log.info(
            CONSUMER_STARTED, extra={"topic": kafka.topic, "group_id": consumer_settings.group_id}
        )
        return await consume(
            consumer,
            processor,
            stop,
            committer,
            poll_timeout_ms=consumer_settings.poll_timeout_ms,
            max_records=consumer_settings.max_poll_records,
        )


async def _leave(consumer: AIOKafkaConsumer, processor: RecordProcessor) -> None:
    await stop_consumer(consumer)  # auto-commit is off: this commits nothing, and leaves the group
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


async def _started(settings: Settings) -> DeadLetterPublisher:
    publisher = DeadLetterPublisher(settings)
    await publisher.start()
    return publisher


async def _subscribed(
    settings: Settings,
    processor: RecordProcessor,
    metrics: ConsumerMetrics,
    membership: _Membership,
) -> tuple[AIOKafkaConsumer, Committer]:
    consumer = AIOKafkaConsumer(**consumer_options(settings))
    committer = Committer(consumer, PendingOffsets(), metrics)
    listener = RebalanceHandler(processor, committer)
    try:
        await consumer.start()
        consumer.subscribe([settings.kafka.topic], listener=listener)
    except BaseException:
        await stop_consumer(consumer)
        raise
    membership.listener, membership.consumer = listener, consumer
    return consumer, committer
