"""The OpenAPI document describes the API truthfully, and Swagger UI is served offline."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from producer_service import create_app
from shared.schema import json_schema
from shared.settings import load_settings
from tests.support import ROOT
from tests.support.fakes import RecordingPublisher


def _app_with_publisher() -> ASGIApp:
    """The app with a recording publisher in each request's state: schemathesis runs no lifespan."""
    project = load_settings(ROOT, env={})
    publisher = RecordingPublisher(project)
    app = create_app(project, lambda _: publisher)

    async def with_publisher(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["state"] = {"publisher": publisher}
        await app(scope, receive, send)

    return with_publisher


# A body over http.max_body_bytes is refused with 413, which schemathesis does not expect.
_CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": [400, 408, 413, 415, 422]}}}
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _app_with_publisher(), config=_CONFIG)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_and_never_5xx(case: Any) -> None:
    case.call_and_validate()


def test_the_document_is_openapi_3_1_built_from_the_event_schema(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    event = document["components"]["schemas"]["Biometrics"]
    assert event["required"] == json_schema()["required"]
    assert event["properties"]["maxHeartRate"] == json_schema()["properties"]["maxHeartRate"]
    body = document["paths"]["/biometrics"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/Biometrics"}


def test_swagger_ui_and_its_assets_are_served_by_the_app_itself(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/openapi.json" in page.text
    assert "//" not in page.text.replace("http://www.w3.org", "")  # nothing from another host
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert "SwaggerUIBundle" in bundle.text
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200
