"""The probes Starlette serves: /healthz and /readyz (ingestion is producer_service.ingestion)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from producer_service.publisher import Publisher


async def healthz(request: Request) -> Response:
    """The process is alive and serving."""
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    """200 when Kafka answers and has the topic, so events can be taken; 503 otherwise."""
    publisher: Publisher = request.state.publisher
    if publisher.ready():
        return Response(b'{"status":"ready"}', media_type="application/json")
    return Response(b'{"status":"unavailable"}', 503, media_type="application/json")
