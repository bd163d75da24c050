"""KafkaPublisher: the one owner of the service's AIOKafkaProducer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from producer_service.metrics import ProducerMetrics
from shared.contracts.schema import Biometrics, encode_record, json_schema
from shared.kafka.adapter import fetch_topic_names
from shared.kafka.batcher import Batch, DeliveryTimeout, RecordBatcher
from shared.kafka.connecting import (
    KafkaAuthenticationError,
    check_authentication,
    retry_until_connected,
)
from shared.kafka.headers import IDEMPOTENCY_KEY, RecordHeaders
from shared.kafka.options import producer_options
from shared.kafka.registry import (
    RegistryRefusedError,
    RegistryUnavailableError,
    SchemaRegistry,
    frame_prefix,
    value_subject,
)
from shared.kafka.topics import ensure_topics
from shared.runtime.settings import Settings

_log = logging.getLogger(__name__)

# Readiness is kept by a task that asks the broker for metadata every interval, each ask
# bounded by the timeout; an answer naming the topic keeps the service ready until it is stale.
_READINESS_INTERVAL_S = 1.0
_READINESS_TIMEOUT_S = 2.0
_READINESS_STALE_S = _READINESS_INTERVAL_S + _READINESS_TIMEOUT_S + 1.0


class Delivery(msgspec.Struct, frozen=True, gc=False):
    """Where the broker acknowledged a record; encodes as {"topic", "partition", "offset"}."""

    topic: str
    partition: int
    offset: int


# What publish takes: a request's events, and with an Idempotency-Key the header value of each.
Events = Sequence[Biometrics]
EventKeys = Sequence[bytes] | None


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

    async def publish(
        self, events: Events, headers: RecordHeaders = (), keys: EventKeys = None
    ) -> list[Delivery]: ...

    def ready(self) -> bool:
        """Whether Kafka can take events now, from state kept current elsewhere: no I/O."""
        ...


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
        self._batcher: RecordBatcher | None = None
        self._metrics.records_in_flight.set_function(lambda: self._in_flight_records)
        self._connecting: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None
        self._ready_until = 0.0  # time.monotonic() up to which the last answer counts
        self._entered = False
        registry = settings.schema_registry
        self._registry = SchemaRegistry(registry) if registry.url else None
        self._prefix = b""  # the wire-format header of every value, with the registry on

    async def __aenter__(self) -> KafkaPublisher:
        self._entered = True
        try:
            await self._connect()
        except RegistryRefusedError as error:
            _log.error(str(error))  # the one line that says why start-up fails
            await self.close()  # no __aexit__ follows a failed __aenter__
            raise
        except (KafkaError, ConnectionError) as error:
            await check_authentication(self._settings.kafka)  # a refused login fails start-up
            what = "schema registry" if isinstance(error, RegistryUnavailableError) else "Kafka"
            _log.warning(f"{what} is not reachable at start-up", extra={"reason": str(error)})
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
        self._ready_until = 0.0
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking
            self._checking = None
        if self._batcher is not None:
            batcher, self._batcher = self._batcher, None
            await batcher.close()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
            _log.info("producer flushed and stopped")
        if self._registry is not None:
            await self._registry.close()

    def ready(self) -> bool:
        """Whether the broker's last answer to the readiness check is recent and names the topic;
        answered without waiting on the network."""
        return time.monotonic() < self._ready_until

    async def _check_readiness(self, producer: AIOKafkaProducer) -> None:
        """Ask the broker for the topics every interval, for ready() to answer from."""
        while True:
            await asyncio.sleep(_READINESS_INTERVAL_S)
            try:
                async with asyncio.timeout(_READINESS_TIMEOUT_S):
                    topics = await fetch_topic_names(producer)
            except (TimeoutError, KafkaError, OSError):
                self._ready_until = 0.0
            except Exception:  # a bug: readiness says no, and the check goes on
                _log.exception("the readiness check failed")
                self._ready_until = 0.0
            else:
                known = self._topic in topics
                self._ready_until = time.monotonic() + _READINESS_STALE_S if known else 0.0

    async def publish(
        self, events: Events, headers: RecordHeaders = (), keys: EventKeys = None
    ) -> list[Delivery]:
        """Send the events, each with these headers (and with `keys`, the idempotency key of
        each), and wait for every acknowledgement; raise PublishError otherwise."""
        batcher = self._batcher
        if batcher is None:
            if not self._entered:
                raise RuntimeError("KafkaPublisher.publish() before it was entered (async with)")
            raise PublishError("not connected to Kafka yet", 0, len(events))
        records = [encode_record(event) for event in events]
        if prefix := self._prefix:
            records = [(key, prefix + value) for key, value in records]
        size = sum(len(name) + len(value) for name, value in headers) * len(records)
        for key, value in records:
            size += len(key) + len(value)
        if keys is not None:
            size += sum(len(IDEMPOTENCY_KEY) + len(key) for key in keys)
        count = len(records)
        if (
            self._in_flight_records + count > self._max_records
            or self._in_flight_bytes + size > self._max_bytes
        ):
            raise OverloadedError(
                f"{self._in_flight_records} records ({self._in_flight_bytes} bytes) await "
                "acknowledgement already"
            )
        try:
            if keys is None:
                carried = list(headers)
                placed = [batcher.append(key, value, carried) for key, value in records]
            else:
                placed = [
                    batcher.append(key, value, [*headers, (IDEMPOTENCY_KEY, event_key)])
                    for (key, value), event_key in zip(records, keys, strict=True)
                ]
        except KafkaError as error:
            raise PublishError(type(error).__name__, 0, count) from error
        self._in_flight_records += count
        self._in_flight_bytes += size
        acknowledged = {batch.acknowledged for batch, _ in placed}
        try:
            if count == 1:
                # shield: a cancelled request must not cancel the batch others wait for.
                await asyncio.shield(placed[0][0].acknowledged)
            else:
                await asyncio.wait(acknowledged)
        except Exception as error:
            raise _publish_error(error, placed) from error
        finally:
            self._in_flight_records -= count
            self._in_flight_bytes -= size
        for future in acknowledged:
            failure = future.exception()
            if failure is not None:
                raise _publish_error(failure, placed) from failure
        topic = self._topic
        return [
            Delivery(topic, batch.partition, batch.acknowledged.result() + index)
            for batch, index in placed
        ]

    def _acknowledged(self, batch: Batch, seconds: float) -> None:
        self._metrics.produce_latency.observe(seconds)
        self._metrics.records_produced.inc(batch.records)
        self._metrics.bytes_produced.inc(batch.bytes)

    async def _connect(self) -> None:
        if self._registry is not None and not self._prefix:
            # Refused (incompatible, a bad login): RegistryRefusedError fails start-up.
            subject = value_subject(self._topic)
            level = self._settings.schema_registry.compatibility
            schema_id = await self._registry.register(subject, json_schema(), level)
            self._prefix = frame_prefix(schema_id)
            _log.info("schema registered", extra={"subject": subject, "schema_id": schema_id})
        if await ensure_topics(self._settings.kafka, [self._topic]):
            _log.info("created topic", extra={"topic": self._topic})
        producer = AIOKafkaProducer(**producer_options(self._settings))
        try:
            await producer.start()
            await producer.partitions_for(self._topic)
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        self._batcher = RecordBatcher(
            producer, self._topic, self._timeout, on_acknowledged=self._acknowledged
        )
        # partitions_for has just found the topic: ready until the checks say otherwise.
        self._ready_until = time.monotonic() + _READINESS_STALE_S
        self._checking = asyncio.create_task(self._check_readiness(producer))
        _log.info("connected to Kafka", extra={"topic": self._topic})


def _publish_error(error: BaseException, placed: Sequence[tuple[Batch, int]]) -> PublishError:
    reason = "delivery timed out" if isinstance(error, DeliveryTimeout) else type(error).__name__
    delivered = sum(
        1
        for batch, _ in placed
        if batch.acknowledged.done() and batch.acknowledged.exception() is None
    )
    return PublishError(reason, delivered, len(placed))
