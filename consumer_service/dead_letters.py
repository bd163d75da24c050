"""DeadLetterPublisher: sets records aside in the dead-letter topic, as
shared.kafka.records.dead_letter says (the reason and the record's origin in headers, a too-large
value left out)."""

from __future__ import annotations

from typing import Any, Protocol

from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.kafka.connecting import started
from shared.kafka.options import dead_letter_producer_options
from shared.kafka.records import dead_letter
from shared.runtime.settings import Settings


class DeadLetters(Protocol):
    """Sets a record aside with the reason; returns once the broker has it."""

    async def set_aside(self, record: ConsumerRecord[Any, Any], reason: str) -> None: ...


class DeadLetterPublisher:
    """The consumer's producer for the dead-letter topic: idempotent, acks=all."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.kafka.dead_letter_topic
        self._producer = AIOKafkaProducer(**dead_letter_producer_options(settings))

    async def start(self) -> None:
        """Connect; on failure the client is closed again and the error raised."""
        await started(self._producer)

    async def close(self) -> None:
        """Flush and stop; safe to call twice."""
        await self._producer.stop()

    async def set_aside(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        """Produce the record to the dead-letter topic and wait for the acknowledgement."""
        letter = dead_letter(record, reason)
        await self._producer.send_and_wait(
            self._topic, value=letter.value, key=letter.key, headers=letter.headers
        )
