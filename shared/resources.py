"""The parts both Kafka loops (the consumer and the zone processor) assemble before they poll:
their probes and record spans, their topics, the schema registry and its ids. Whatever waits
for Kafka retries until it answers, and gives up with StoppedError once stop is set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import CollectorRegistry

from shared.kafka import ensure_topics, retry_until_connected
from shared.probes import serving_probes
from shared.records import SchemaIds
from shared.registry import SchemaRegistry
from shared.settings import ConsumerSettings, KafkaSettings, Settings, ZonesSettings
from shared.startup import unless_stopped
from shared.tracing import RecordSpans, exporting_spans

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

T = TypeVar("T")


async def until_connected(
    stop: asyncio.Event, kafka: KafkaSettings, what: str, connect: Callable[[], Awaitable[T]]
) -> T:
    """connect()'s result, retried while Kafka (or the registry) cannot be reached;
    StoppedError if stop is set first."""
    return await unless_stopped(stop, retry_until_connected(connect, kafka, what))


async def create_topics(stop: asyncio.Event, kafka: KafkaSettings, names: Sequence[str]) -> None:
    """Create the topics unless they exist: a loop may start before the producer, and need not
    wait for a metadata refresh to see them."""
    await until_connected(stop, kafka, "topics", lambda: ensure_topics(kafka, names))


@asynccontextmanager
async def observed(
    settings: Settings,
    member: ConsumerSettings | ZonesSettings,
    service_name: str,
    metrics: CollectorRegistry,
    ready: Callable[[], bool],
    provider: TracerProvider | None,
) -> AsyncIterator[RecordSpans | None]:
    """For the block: the probes on the member's probe_host and probe_port (/metrics, /readyz
    as `ready` says), and the spans of records consumed from kafka.topic, exported as tracing
    says (or to `provider`) and flushed after; None with tracing off."""
    with exporting_spans(settings.tracing, service_name, provider) as exporting:
        async with serving_probes(member.probe_host, member.probe_port, metrics, ready):
            if exporting is None:
                yield None
            else:
                yield RecordSpans(exporting, settings.kafka.topic, member.group_id)


@asynccontextmanager
async def schema_registry(settings: Settings) -> AsyncIterator[SchemaRegistry | None]:
    """The registry's client, closed after the block; None with the registry off."""
    if not settings.schema_registry.url:
        yield None
        return
    registry = SchemaRegistry(settings.schema_registry)
    try:
        yield registry
    finally:
        await registry.close()


def schema_ids(registry: SchemaRegistry | None, retry_backoff_ms: int) -> SchemaIds:
    """The ids of framed records, looked up in the registry (if on), retried this often while it
    is unreachable (at least every 0.1 s)."""
    return SchemaIds(registry, max(retry_backoff_ms / 1000, 0.1))
