"""The probes of every service: /metrics, /healthz and /readyz (probe_routes).

The producer serves them among its own routes; the consumer and the zone processor serve them
from a small HTTP server (serving_probes) beside their Kafka loop, in its event loop. Readiness
is a plain callable answered from state kept current elsewhere, so a probe does no network I/O
and answers at once whatever the broker does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Literal

import msgspec
import uvicorn
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.runtime.settings import ConsumerSettings, Settings, ZonesSettings
from shared.runtime.tracing import RecordSpans, exporting_spans

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = [
    "Probe",
    "create_probe_app",
    "observed",
    "probe_routes",
]


class Probe(msgspec.Struct, frozen=True, gc=False):
    """A probe's answer."""

    status: Literal["ok", "ready", "unavailable"]


_ALIVE = msgspec.json.encode(Probe("ok"))
_READY = msgspec.json.encode(Probe("ready"))
_UNAVAILABLE = msgspec.json.encode(Probe("unavailable"))


class _Readiness:
    """`biometrics_ready`: what /readyz answers, as a gauge an alert can read."""

    def __init__(self, is_ready: Callable[[], bool]) -> None:
        self._is_ready = is_ready

    def collect(self) -> Iterator[Metric]:
        try:
            ready = self._is_ready()
        except Exception:  # /readyz answers such a readiness with its error, never 200
            ready = False
        yield GaugeMetricFamily(
            "biometrics_ready",
            "1 while /readyz answers 200, else 0",
            value=1 if ready else 0,
        )


def probe_routes(registry: CollectorRegistry, is_ready: Callable[[], bool]) -> list[Route]:
    """GET /metrics (Prometheus: the registry's metrics, `biometrics_ready` and the process's
    CPU and memory), /healthz (alive) and /readyz (200 or 503, as is_ready() says)."""
    # A registry of the probes' own, so that the service's registry is only read, never changed.
    own = CollectorRegistry()
    own.register(_Readiness(is_ready))
    ProcessCollector(registry=own)

    async def metrics(request: Request) -> Response:
        body = generate_latest(registry) + generate_latest(own)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return Response(_ALIVE, media_type="application/json")

    async def readyz(request: Request) -> Response:
        if is_ready():
            return Response(_READY, media_type="application/json")
        return Response(_UNAVAILABLE, 503, media_type="application/json")

    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]


def create_probe_app(registry: CollectorRegistry, is_ready: Callable[[], bool]) -> Starlette:
    """An app of the probes alone."""
    return Starlette(routes=probe_routes(registry, is_ready))


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the Kafka loop owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


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


@contextlib.asynccontextmanager
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
