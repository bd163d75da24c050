"""KafkaPublisher: the one owner of the service's AIOKafkaProducer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from producer_service.metrics import ProducerMetrics
from shared.kafka import (
    KafkaAuthenticationError,
    check_authentication,
    client_options,
    ensure_topics,
    retry_until_connected,
)
from shared.schema import Biometrics, encode_key, encode_value
from shared.settings import Settings

_log = logging.getLogger(__name__)

_READY_TIMEOUT_S = 2.0


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


class OverloadedError(Exception):
    """Taking these records would pass the bound on records or bytes awaiting acknowledgement."""


class Publisher(Protocol):
    """What the HTTP layer needs: publish events, and say whether Kafka can take them now."""

    async def publish(self, events: Sequence[Biometrics]) -> list[Delivery]: ...

    async def ready(self) -> bool: ...


class KafkaPublisher:
    """Produce events keyed by device id; answer only once the broker has acknowledged them.

    Entering it tries Kafka once; if Kafka cannot be reached it keeps trying in the background
    while publish() answers PublishError at once, so the service starts without its broker.
    """

    def __init__(self, settings: Settings, metrics: ProducerMetrics | None = None) -> None:
        self._settings = settings
        self._metrics = metrics or ProducerMetrics()
        self._topic = settings.kafka.topic
        self._timeout = settings.producer.delivery_timeout_ms / 1000
        self._max_records = settings.producer.max_in_flight_records
        self._max_bytes = settings.producer.max_in_flight_bytes
        self._in_flight_records = 0
        self._in_flight_bytes = 0
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._entered = False

    async def __aenter__(self) -> KafkaPublisher:
        self._entered = True
        try:
            await self._connect()
        except (KafkaError, ConnectionError) as error:
            await check_authentication(self._settings.kafka)  # a refused login fails start-up
            _log.warning("Kafka is not reachable at start-up", extra={"reason": repr(error)})
            self._connecting = asyncio.create_task(
                retry_until_connected(self._connect, self._settings.kafka, "producer")
            )
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
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaAuthenticationError):
                await self._connecting
            self._connecting = None
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
            _log.info("producer flushed and stopped")

    async def ready(self) -> bool:
        """Whether the broker answers now and knows the topic."""
        if self._producer is None:
            return False
        try:
            async with asyncio.timeout(_READY_TIMEOUT_S):
                cluster = await self._producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError):
            return False
        return self._topic in cluster.topics()

    async def publish(self, events: Sequence[Biometrics]) -> list[Delivery]:
        """Send the events and wait for every acknowledgement; raise PublishError otherwise."""
        if not self._entered:
            raise RuntimeError("KafkaPublisher.publish() before it was entered (async with)")
        if self._producer is None:
            raise PublishError("not connected to Kafka yet", 0, len(events))
        records = [(encode_key(event), encode_value(event)) for event in events]
        size = sum(len(key) + len(value) for key, value in records)
        if (
            self._in_flight_records + len(records) > self._max_records
            or self._in_flight_bytes + size > self._max_bytes
        ):
            raise OverloadedError(
                f"{self._in_flight_records} records ({self._in_flight_bytes} bytes) await "
                "acknowledgement already"
            )
        self._in_flight_records += len(records)
        self._in_flight_bytes += size
        self._metrics.records_in_flight.inc(len(records))
        started = time.perf_counter()
        try:
            deliveries = await self._send(self._producer, records)
        finally:
            self._in_flight_records -= len(records)
            self._in_flight_bytes -= size
            self._metrics.records_in_flight.dec(len(records))
        self._metrics.produce_latency.observe(time.perf_counter() - started)
        self._metrics.records_produced.inc(len(records))
        self._metrics.bytes_produced.inc(size)
        return deliveries

    async def _send(
        self, producer: AIOKafkaProducer, records: Sequence[tuple[bytes, bytes]]
    ) -> list[Delivery]:
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self._timeout):
                for key, value in records:
                    futures.append(await producer.send(self._topic, key=key, value=value))
                # shield/wait rather than a bare await or gather(): a timeout must not cancel
                # records already queued.
                if len(futures) == 1:
                    await asyncio.shield(futures[0])
                elif futures:
                    await asyncio.wait(futures)
        except TimeoutError:
            raise PublishError("delivery timed out", _acknowledged(futures), len(records)) from None
        except KafkaError as error:
            reason = type(error).__name__
            raise PublishError(reason, _acknowledged(futures), len(records)) from error
        failures = [f.exception() for f in futures if f.exception() is not None]
        if failures:
            reason = type(failures[0]).__name__
            raise PublishError(reason, _acknowledged(futures), len(records)) from failures[0]
        results = [f.result() for f in futures]
        return [Delivery(r.topic, r.partition, r.offset) for r in results]

    async def _connect(self) -> None:
        if await ensure_topics(self._settings.kafka, [self._topic]):
            _log.info("created topic", extra={"topic": self._topic})
        producer = AIOKafkaProducer(**producer_options(self._settings))
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        _log.info("connected to Kafka", extra={"topic": self._topic})


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
