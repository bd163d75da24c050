"""The producer and the consumer run in the test's event loop: the producer served by uvicorn on a
free port (and a client of it), or its app called directly by a client without a socket; the
consumer's loop writing its lines to a LineCollector."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
import uvicorn
from opentelemetry.sdk.trace import TracerProvider
from starlette.types import ASGIApp, Message

from consumer_service import run_consumer
from producer_service import create_app
from producer_service.app import PublisherFactory
from shared.runtime.settings import Settings
from tests.support.fakes import LineCollector


class _Server(uvicorn.Server):
    """uvicorn's server, with an event set once start-up has finished (or failed)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: Any = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


@asynccontextmanager
async def serving_producer(
    settings: Settings,
    publisher_factory: PublisherFactory | None = None,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[tuple[str, _Server]]:
    """Serve the producer app on a free port in this loop; yield its URL and the server."""
    config = uvicorn.Config(
        create_app(settings, publisher_factory, tracer_provider=tracer_provider),
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        await server.ready.wait()
    if not server.started:
        # uvicorn ends a failed start-up with SystemExit(3); the reason is in the log.
        with contextlib.suppress(SystemExit):
            await task
        raise RuntimeError("the producer did not start; see the log")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def producer_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the producer served (serving_producer) with these settings."""
    async with serving_producer(settings) as (url, _), httpx.AsyncClient(base_url=url) as client:
        yield client


@asynccontextmanager
async def app_client(app: ASGIApp, timeout_s: float = 10) -> AsyncIterator[httpx.AsyncClient]:
    """A client that calls `app` in this loop (no socket), between the app's lifespan start-up
    and shutdown, run as a server runs them."""
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.create_task(app(scope, to_app.get, from_app.put))

    async def step(name: str) -> None:
        await to_app.put({"type": f"lifespan.{name}"})
        async with asyncio.timeout(timeout_s):
            answer = await from_app.get()
        if answer["type"] != f"lifespan.{name}.complete":
            await lifespan
            raise RuntimeError(f"the app's lifespan {name}: {answer}")

    await step("startup")
    try:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client
    finally:
        await step("shutdown")
        await lifespan


@asynccontextmanager
async def running_consumer(settings: Settings) -> AsyncIterator[LineCollector]:
    """Run consumer_service's loop in this event loop; stop it (as SIGTERM would) on exit."""
    collector = LineCollector()
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, stop, sink=collector))
    try:
        yield collector
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task
