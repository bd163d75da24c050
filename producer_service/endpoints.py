"""The HTTP endpoints: validate, publish, answer once the broker has acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from producer_service.errors import (
    PayloadTooLargeError,
    RequestTimeoutError,
    UnsupportedMediaError,
    from_validation_error,
)
from producer_service.publisher import Delivery, Publisher
from shared.schema import Biometrics, parse_event, parse_events


async def post_biometrics(request: Request) -> Response:
    """Accept one event; 202 with its topic, partition and offset."""
    body = await _json_body(request)
    try:
        event = parse_event(body)
    except ValidationError as error:
        raise from_validation_error(error) from None
    [delivery] = await _publish(request, [event])
    return _accepted(_coordinates(delivery))


async def post_biometrics_batch(request: Request) -> Response:
    """Accept a JSON array of events, all or none; 202 with each record's coordinates."""
    body = await _json_body(request)
    try:
        events = parse_events(body, request.app.state.max_batch_events)
    except ValidationError as error:
        raise from_validation_error(error) from None
    deliveries = await _publish(request, events)
    return _accepted({"records": [_coordinates(d) for d in deliveries]})


async def healthz(request: Request) -> Response:
    """The process is alive and serving."""
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    """200 when Kafka answers and has the topic, so events can be taken; 503 otherwise."""
    publisher: Publisher = request.state.publisher
    if await publisher.ready():
        return Response(b'{"status":"ready"}', media_type="application/json")
    return Response(b'{"status":"unavailable"}', 503, media_type="application/json")


async def _json_body(request: Request) -> bytes:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaError(
            f"expected Content-Type application/json, got {media_type or 'none'}"
        )
    limit: int = request.app.state.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(_too_large(limit))
    # Content-Length may be absent (chunked) or wrong: count what really arrives.
    chunks: list[bytes] = []
    size = 0
    timeout: float = request.app.state.body_timeout_s
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(_too_large(limit))
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeoutError(f"request body took longer than {timeout:g} s") from None
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (http.max_body_bytes)"


async def _publish(request: Request, events: Sequence[Biometrics]) -> list[Delivery]:
    publisher: Publisher = request.state.publisher
    return await publisher.publish(events)


def _coordinates(delivery: Delivery) -> dict[str, str | int]:
    return {"topic": delivery.topic, "partition": delivery.partition, "offset": delivery.offset}


def _accepted(content: object) -> Response:
    return Response(orjson.dumps(content), status_code=202, media_type="application/json")
