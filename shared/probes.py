"""serving_probes: a Kafka loop's small HTTP server (create_probe_app) for /metrics, /healthz and
/readyz, run beside the loop in its event loop (the consumer's and the zone processor's)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Generator

import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the Kafka loop owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def create_probe_app(registry: CollectorRegistry, is_ready: Callable[[], bool]) -> Starlette:
    """/metrics (Prometheus), /healthz (alive), /readyz (as is_ready() says)."""

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(request: Request) -> Response:
        if is_ready():
            return Response(b'{"status":"ready"}', media_type="application/json")
        return Response(b'{"status":"unavailable"}', 503, media_type="application/json")

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


@contextlib.asynccontextmanager
async def serving_probes(
    host: str, port: int, registry: CollectorRegistry, is_ready: Callable[[], bool]
) -> AsyncIterator[None]:
    """Serve the probes in this event loop while the block runs."""
    config = uvicorn.Config(
        create_probe_app(registry, is_ready),
        host=host,
        port=port,
        lifespan="off",
        access_log=False,
        log_config=None,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    try:
        yield None
    finally:
        server.should_exit = True
        await task
