"""The producer's OpenAPI 3.1 document, Swagger UI, and the AsyncAPI document of the topics.

The schemas of the request and of every answer are generated from the msgspec types the service
decodes and encodes (the event, Delivery, BatchAccepted, ErrorBody, Probe), so the document and
the wire cannot drift apart. Swagger UI's assets come from the swagger-ui-py package and are
served by the app itself, so /docs works offline. /asyncapi.json serves what
`python -m devtools.asyncapi` writes (shared.contracts.asyncapi).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from producer_service.errors import ErrorBody
from producer_service.ingestion import BATCH_PATH, EVENT_PATH, BatchAccepted
from producer_service.publisher import Delivery
from shared.contracts.asyncapi import asyncapi_json
from shared.contracts.schema import Biometrics
from shared.runtime.probes import Probe
from shared.runtime.settings import Settings

_REF = "#/components/schemas/{name}"
ASYNCAPI_PATH = "/asyncapi.json"
_SAMPLE = {
    "deviceId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "heartRates": [{"dateTime": "2026-11-25T10:41:16.123+00:00", "value": 72}],
    "stepCounts": [{"dateTime": "2026-11-25T10:41:16.123+00:00", "value": 12}],
    "maxHeartRate": 190,
}


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the producer's API."""
    _, schemas = msgspec.json.schema_components(
        [Biometrics, Delivery, BatchAccepted, ErrorBody, Probe], ref_template=_REF
    )
    event = {"$ref": _REF.format(name=Biometrics.__name__)}
    guarded = settings.http.require_api_key
    limited = settings.http.device_rate_per_s > 0
    keyed = settings.http.require_idempotency_key
    batch = {
        "type": "array",
        "items": event,
        "minItems": 1,
        "maxItems": settings.http.max_batch_events,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Biometrics ingestion",
            "version": "1.0.0",
            "description": "Fitness-tracker biometrics into Apache Kafka. A 202 means the broker "
            "has acknowledged the record (acks=all, idempotent producer). The records, their "
            f"key and headers are described by the AsyncAPI document at {ASYNCAPI_PATH}.",
        },
        "paths": {
            EVENT_PATH: {
                "post": _ingestion(
                    "Send one event",
                    event,
                    {"example": _SAMPLE},
                    Delivery,
                    "postBiometrics",
                    guarded,
                    limited,
                    keyed,
                )
            },
            BATCH_PATH: {
                "post": _ingestion(
                    "Send events, all or none",
                    batch,
                    {"example": [_SAMPLE]},
                    BatchAccepted,
                    "postBiometricsBatch",
                    guarded,
                    limited,
                    keyed,
                )
            },
            "/healthz": {"get": _probe("The process is alive", "healthz", (200,))},
            "/readyz": {"get": _probe("Kafka answers and has the topic", "readyz", (200, 503))},
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }


def _content(answer: type) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(name=answer.__name__)}}}


def _ingestion(
    summary: str,
    schema: dict[str, Any],
    example: dict[str, Any],
    answer: type,
    operation: str,
    guarded: bool,
    limited: bool,
    keyed: bool,
) -> dict[str, Any]:
    error = _content(ErrorBody)
    retry_after = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    auth: dict[str, Any] = {}
    if guarded:
        auth = {
            "401": {"description": "No API key", "content": error},
            "403": {"description": "Unknown API key", "content": error},
        }
    rate: dict[str, Any] = {}
    if limited:
        field = {"schema": {"type": "string"}}
        rate = {
            "429": {
                "description": "Over the device's rate; retry after Retry-After",
                "headers": {
                    **retry_after,
                    "RateLimit": {**field, "description": "the device's bucket now"},
                    "RateLimit-Policy": {**field, "description": "the bucket of every device"},
                },
                "content": error,
            }
        }
    operation_document: dict[str, Any] = {
        "summary": summary,
        "operationId": operation,
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": keyed,
                "description": "The same key on every retry of a request, a new one for each new "
                "request: a retry gets the first answer and nothing is produced again",
                "schema": {"type": "string", "pattern": r'^"?[A-Za-z0-9._:-]{1,128}"?$'},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema, **example}},
        },
        "responses": {
            "202": {
                "description": "Acknowledged by Kafka",
                "content": _content(answer),
            },
            "400": {"description": "Not JSON, or a malformed Idempotency-Key", "content": error},
            **auth,
            "408": {"description": "The body came too slowly", "content": error},
            "413": {"description": "Body over http.max_body_bytes", "content": error},
            "415": {"description": "Not application/json", "content": error},
            "422": {
                "description": "Breaks the schema (details name each field), or an "
                "Idempotency-Key sent before with another request",
                "content": error,
            },
            **rate,
            "503": {
                "description": "Kafka unavailable, or overloaded; retry after Retry-After",
                "headers": retry_after,
                "content": error,
            },
        },
    }
    if guarded:
        operation_document["security"] = [{"apiKey": []}]
    return operation_document


def _probe(summary: str, operation: str, statuses: tuple[int, ...]) -> dict[str, Any]:
    probe = _content(Probe)
    return {
        "summary": summary,
        "operationId": operation,
        "responses": {
            str(status): {"description": summary, "content": probe} for status in statuses
        },
    }


_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Biometrics ingestion: API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""


def documentation_routes(settings: Settings) -> list[BaseRoute]:
    """GET /openapi.json, GET /asyncapi.json, GET /docs and Swagger UI's assets under
    /docs/assets."""
    document = openapi_document(settings)
    events_document = asyncapi_json(settings)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    async def asyncapi(request: Request) -> Response:
        return Response(events_document, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(_DOCS_PAGE)

    return [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route(ASYNCAPI_PATH, asyncapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Mount("/docs/assets", StaticFiles(directory=_swagger_ui_assets()), name="swagger-ui"),
    ]


def _swagger_ui_assets() -> Path:
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"
