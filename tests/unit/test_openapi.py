"""The OpenAPI document describes the API truthfully, and Swagger UI is served offline."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from starlette.testclient import TestClient

from producer_service import create_app
from shared.contracts.schema import json_schema
from shared.runtime.settings import load_settings
from tests.support import ROOT
from tests.support.fakes import RecordingPublisher

_PROJECT = load_settings(ROOT, env={})
_APP = create_app(_PROJECT, lambda _: RecordingPublisher(_PROJECT))


@pytest.fixture(scope="module", autouse=True)
def _open_publisher() -> Iterator[None]:
    """schemathesis calls the app without its lifespan: run the lifespan around these tests."""
    with TestClient(_APP):
        yield


# A body over http.max_body_bytes is refused with 413, which schemathesis does not expect.
_CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": [400, 408, 413, 415, 422]}}}
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=_CONFIG)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_and_never_5xx(case: Any) -> None:
    if case.headers and "Idempotency-Key" in case.headers:
        # Generated keys repeat across cases with other bodies, which is a 422 by design
        # (tests/unit/test_idempotency_keys.py): each case gets a key of its own.
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
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
