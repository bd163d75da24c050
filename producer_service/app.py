"""create_app: the Starlette application, its routes and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from producer_service.endpoints import healthz, post_biometrics, post_biometrics_batch, readyz
from producer_service.errors import EXCEPTION_HANDLERS
from producer_service.publisher import KafkaPublisher, Publisher
from shared.settings import Settings

PublisherFactory = Callable[[Settings], AbstractAsyncContextManager[Publisher]]


def create_app(
    settings: Settings, publisher_factory: PublisherFactory = KafkaPublisher
) -> Starlette:
    """Build the producer's app; the publisher is opened at start-up and flushed at shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with publisher_factory(settings) as publisher:
            yield {"publisher": publisher}

    app = Starlette(
        routes=[
            Route("/biometrics", post_biometrics, methods=["POST"]),
            Route("/biometrics/batch", post_biometrics_batch, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.max_body_bytes = settings.http.max_body_bytes
    app.state.body_timeout_s = settings.http.body_timeout_s
    app.state.max_batch_events = settings.http.max_batch_events
    return app
