"""run_consumer: the one owner of the service's AIOKafkaConsumer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer

from consumer_service.handler import log_record
from consumer_service.loop import consume
from shared.kafka import client_options, ensure_topic
from shared.settings import Settings

_log = logging.getLogger(__name__)


async def run_consumer(settings: Settings, stop: asyncio.Event) -> int:
    """Consume the events topic until stop is set; return the number of records handled."""
    # Creating the topic here too lets the consumer start first, without a metadata refresh wait.
    await ensure_topic(settings.kafka)
    consumer = AIOKafkaConsumer(settings.kafka.topic, **consumer_options(settings))
    await consumer.start()
    _log.info(
        "consumer started",
        extra={"topic": settings.kafka.topic, "group_id": settings.consumer.group_id},
    )
    try:
        return await consume(
            consumer,
            log_record,
            stop,
            poll_timeout_ms=settings.consumer.poll_timeout_ms,
            max_records=settings.consumer.max_poll_records,
        )
    finally:
        await consumer.stop()  # commits nothing more (auto-commit is off) and leaves the group
        _log.info("consumer stopped")


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
    }
