"""run_consumer: owns the service's AIOKafkaConsumer and its dead-letter producer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer

from consumer_service.dead_letters import DeadLetterPublisher
from consumer_service.loop import CommitOnRevoke, PendingOffsets, consume
from consumer_service.processor import RecordProcessor
from consumer_service.sink import Sink, StreamSink
from shared.kafka import client_options, ensure_topics, retry_until_connected
from shared.settings import Settings

_log = logging.getLogger(__name__)

T = TypeVar("T")


class StoppedError(Exception):
    """Stop was asked for before the consumer had connected."""


async def run_consumer(settings: Settings, stop: asyncio.Event, sink: Sink | None = None) -> int:
    """Consume the events topic until stop is set; return the number of records processed.

    While Kafka cannot be reached the consumer keeps retrying, and joins once it can.
    """
    kafka = settings.kafka
    topics = [kafka.topic, kafka.dead_letter_topic]
    try:
        # Creating the topics here too lets the consumer start first, without waiting for a
        # metadata refresh to see them.
        await _unless_stopped(
            stop, retry_until_connected(lambda: ensure_topics(kafka, topics), kafka, "topics")
        )
        dead_letters = await _unless_stopped(
            stop, retry_until_connected(lambda: _started(settings), kafka, "dead-letter producer")
        )
    except StoppedError:
        return 0
    pending = PendingOffsets()
    listener = CommitOnRevoke(pending)
    try:
        try:
            consumer = await _unless_stopped(
                stop, retry_until_connected(lambda: _subscribed(settings, listener), kafka, "group")
            )
        except StoppedError:
            return 0
        listener.source = consumer
        _log.info(
            "consumer started", extra={"topic": kafka.topic, "group_id": settings.consumer.group_id}
        )
        processor = RecordProcessor(
            sink or StreamSink(),
            dead_letters,
            max_record_bytes=settings.consumer.max_record_bytes,
            retries=settings.consumer.handler_retries,
            retry_backoff_s=settings.consumer.retry_backoff_ms / 1000,
        )
        try:
            return await consume(
                consumer,
                processor.process,
                stop,
                pending,
                poll_timeout_ms=settings.consumer.poll_timeout_ms,
                max_records=settings.consumer.max_poll_records,
            )
        finally:
            await consumer.stop()  # auto-commit is off: this commits nothing, and leaves the group
            _log.info("consumer stopped", extra=vars(processor.counts))
    finally:
        await dead_letters.close()


def consumer_options(settings: Settings) -> dict[str, Any]:
    """AIOKafkaConsumer arguments, one for one with the settings; offsets are committed by hand."""
    consumer = settings.consumer
    return {
        **client_options(settings.kafka),
        "group_id": consumer.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": consumer.auto_offset_reset,
        "max_poll_records": consumer.max_poll_records,
        "session_timeout_ms": consumer.session_timeout_ms,
        # Poison records larger than max_record_bytes must still be fetched, to be set aside.
        "max_partition_fetch_bytes": max(1024 * 1024, consumer.max_record_bytes * 4),
    }


async def _started(settings: Settings) -> DeadLetterPublisher:
    publisher = DeadLetterPublisher(settings)
    await publisher.start()
    return publisher


async def _subscribed(settings: Settings, listener: CommitOnRevoke) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(**consumer_options(settings))
    try:
        await consumer.start()
        consumer.subscribe([settings.kafka.topic], listener=listener)
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def _unless_stopped(stop: asyncio.Event, awaitable: Awaitable[T]) -> T:
    work = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([work, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if work.done():
        return work.result()
    work.cancel()
    raise StoppedError
