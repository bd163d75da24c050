"""KafkaPublisher: the one owner of the service's AIOKafkaProducer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.kafka import client_options, ensure_topic
from shared.schema import Biometrics, encode_key, encode_value
from shared.settings import Settings

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the broker acknowledged a record."""

    topic: str
    partition: int
    offset: int


class PublishError(Exception):
    """The broker did not acknowledge every record in time; `delivered` counts those it did."""

    def __init__(self, reason: str, delivered: int, total: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delivered = delivered
        self.total = total


class Publisher(Protocol):
    """What the HTTP layer needs: publish events and learn where the broker put them."""

    async def publish(self, events: Sequence[Biometrics]) -> list[Delivery]: ...


class KafkaPublisher:
    """Produce events keyed by device id; answer only once the broker has acknowledged them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.kafka.topic
        self._timeout = settings.producer.delivery_timeout_ms / 1000
        self._producer = AIOKafkaProducer(**producer_options(settings))
        self._started = False

    async def __aenter__(self) -> KafkaPublisher:
        if await ensure_topic(self._settings.kafka):
            _log.info("created topic", extra={"topic": self._topic})
        await self._producer.start()
        self._started = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush every accepted record, then stop the client; safe to call twice."""
        if self._started:
            self._started = False
            await self._producer.stop()
            _log.info("producer flushed and stopped")

    async def publish(self, events: Sequence[Biometrics]) -> list[Delivery]:
        """Send the events and wait for every acknowledgement; raise PublishError otherwise."""
        if not self._started:
            raise RuntimeError("KafkaPublisher.publish() before it was entered (async with)")
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self._timeout):
                for event in events:
                    futures.append(
                        await self._producer.send(
                            self._topic, key=encode_key(event), value=encode_value(event)
                        )
                    )
                # wait() rather than gather(): a timeout must not cancel records already queued.
                if futures:
                    await asyncio.wait(futures)
        except TimeoutError:
            raise PublishError("delivery timed out", _acknowledged(futures), len(events)) from None
        except KafkaError as error:
            reason = type(error).__name__
            raise PublishError(reason, _acknowledged(futures), len(events)) from error
        failures = [f.exception() for f in futures if f.exception() is not None]
        if failures:
            reason = type(failures[0]).__name__
            raise PublishError(reason, _acknowledged(futures), len(events)) from failures[0]
        results = [f.result() for f in futures]
        return [Delivery(r.topic, r.partition, r.offset) for r in results]


def _acknowledged(futures: Sequence[asyncio.Future[Any]]) -> int:
    return sum(1 for f in futures if f.done() and not f.cancelled() and f.exception() is None)


def producer_options(settings: Settings) -> dict[str, Any]:
    """AIOKafkaProducer arguments, one for one with the settings."""
    producer = settings.producer
    compression = None if producer.compression_type == "none" else producer.compression_type
    return {
        **client_options(settings.kafka),
        "acks": producer.acks if producer.acks == "all" else int(producer.acks),
        "enable_idempotence": producer.enable_idempotence,
        "linger_ms": producer.linger_ms,
        "max_batch_size": producer.max_batch_size,
        "compression_type": compression,
    }
