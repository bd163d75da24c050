"""create_app: the producer's request pipeline, its routes and its lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

from starlette.routing import Route, Router

from producer_service.ingestion import Ingestion
from producer_service.metrics import IdempotencyMetrics, ProducerMetrics
from producer_service.openapi import documentation_routes
from producer_service.pipeline import RequestPipeline, RequestRecorder
from producer_service.publisher import KafkaPublisher, Publisher
from producer_service.tracing import RequestSpans
from shared.runtime.probes import probe_routes
from shared.runtime.settings import Settings
from shared.runtime.tracing import start_tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

PublisherFactory = Callable[[Settings], AbstractAsyncContextManager[Publisher]]


def create_app(
    settings: Settings,
    publisher_factory: PublisherFactory | None = None,
    on_started: Callable[[], None] | None = None,
    tracer_provider: TracerProvider | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RequestPipeline:
    """Build the producer's app; the publisher is opened at start-up and flushed at shutdown.

    `on_started` runs once the publisher is open, before the first request. Spans go to
    `tracer_provider` when given (its owner shuts it down), else to the exporter of
    tracing.exporter, flushed at shutdown. The device limits and the idempotency window read
    time from `clock`.
    """
    provider = start_tracing(settings.tracing, "biometrics-producer", tracer_provider)
    spans = None if provider is None else RequestSpans(provider, settings.kafka.topic)
    metrics = ProducerMetrics()
    ingestion = Ingestion(settings.http, clock)
    metrics.registry.register(IdempotencyMetrics(ingestion.idempotency))
    if ingestion.limits is not None:
        metrics.devices_remembered.set_function(ingestion.limits.__len__)
    routes = [
        *probe_routes(metrics.registry, ingestion.ready),
        *documentation_routes(settings),
    ]
    paths = [*ingestion.routes, *(route.path for route in routes if isinstance(route, Route))]
    recorder = RequestRecorder(metrics, paths, access_log=settings.http.access_log)
    if publisher_factory is None:
        publisher_factory = partial(KafkaPublisher, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        try:
            async with publisher_factory(settings) as publisher:
                ingestion.publisher = publisher
                if on_started is not None:
                    on_started()
                yield
        finally:
            recorder.flush()
            if provider is not None and provider is not tracer_provider:
                provider.shutdown()

    router = Router(routes, lifespan=lifespan)
    return RequestPipeline(router, ingestion, recorder, metrics.errors, spans)
