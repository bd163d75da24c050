"""DeadLetterPublisher: sets records aside in the dead-letter topic, the reason in its headers.

Headers of a dead letter: ``dlq.error`` (why), ``dlq.original.topic``, ``dlq.original.partition``
and ``dlq.original.offset`` (where the record came from); the key and value are the original's.
A value too large even for the dead-letter topic is left out, with ``dlq.value-omitted``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError

from shared.kafka_options import dead_letter_producer_options
from shared.settings import Settings

VALUE_OMITTED_HEADER = ("dlq.value-omitted", b"too large for the dead-letter topic")


def dead_letter_headers(record: ConsumerRecord[Any, Any], reason: str) -> list[tuple[str, bytes]]:
    """The headers of a dead letter: why, and where the record came from."""
    return [
        ("dlq.error", reason.encode()),
        ("dlq.original.topic", record.topic.encode()),
        ("dlq.original.partition", str(record.partition).encode()),
        ("dlq.original.offset", str(record.offset).encode()),
    ]


class DeadLetters(Protocol):
    """Sets a record aside with the reason; returns once the broker has it."""

    async def set_aside(self, record: ConsumerRecord[Any, Any], reason: str) -> None: ...


class DeadLetterPublisher:
    """The consumer's producer for the dead-letter topic: idempotent, acks=all."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.kafka.dead_letter_topic
        self._producer = AIOKafkaProducer(**dead_letter_producer_options(settings))
        self._started = False

    async def start(self) -> None:
        """Connect; on failure the client is closed again and the error raised."""
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()
            raise
        self._started = True

    async def close(self) -> None:
        """Flush and stop; safe to call twice."""
        if self._started:
            self._started = False
            await self._producer.stop()

    async def __aenter__(self) -> DeadLetterPublisher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def set_aside(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        """Produce the record to the dead-letter topic and wait for the acknowledgement."""
        headers = dead_letter_headers(record, reason)
        try:
            await self._producer.send_and_wait(
                self._topic, value=record.value, key=record.key, headers=headers
            )
        except MessageSizeTooLargeError:
            headers.append(VALUE_OMITTED_HEADER)
            await self._producer.send_and_wait(
                self._topic, value=None, key=record.key or b"", headers=headers
            )
