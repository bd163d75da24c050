"""create_app: the Starlette application, its routes and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from producer_service.auth import ApiKeyGuard
from producer_service.endpoints import healthz, post_biometrics, post_biometrics_batch, readyz
from producer_service.errors import EXCEPTION_HANDLERS
from producer_service.metrics import ProducerMetrics
from producer_service.middleware import RequestObserver
from producer_service.openapi import documentation_routes
from producer_service.publisher import KafkaPublisher, Publisher
from shared.settings import Settings

INGESTION_PATHS = ("/biometrics", "/biometrics/batch")

PublisherFactory = Callable[[Settings], AbstractAsyncContextManager[Publisher]]


def create_app(settings: Settings, publisher_factory: PublisherFactory | None = None) -> Starlette:
    """Build the producer's app; the publisher is opened at start-up and flushed at shutdown."""
    metrics = ProducerMetrics()
    if publisher_factory is None:
        publisher_factory = partial(KafkaPublisher, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with publisher_factory(settings) as publisher:
            yield {"publisher": publisher}

    app = Starlette(
        routes=[
            Route(INGESTION_PATHS[0], post_biometrics, methods=["POST"]),
            Route(INGESTION_PATHS[1], post_biometrics_batch, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics.endpoint, methods=["GET"]),
            *documentation_routes(settings),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    if settings.http.require_api_key:
        app.add_middleware(ApiKeyGuard, keys=settings.http.api_keys, paths=INGESTION_PATHS)
    routes = [route.path for route in app.routes if isinstance(route, Route)]
    app.add_middleware(RequestObserver, metrics=metrics, routes=routes)
    app.state.metrics = metrics
    app.state.max_body_bytes = settings.http.max_body_bytes
    app.state.body_timeout_s = settings.http.body_timeout_s
    app.state.max_batch_events = settings.http.max_batch_events
    return app
