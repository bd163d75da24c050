"""One request pipeline: every route's answers, errors included, have the request id, the one
error shape, one count and one access-log line."""

from __future__ import annotations

import ast
import logging

import pytest
from starlette.testclient import TestClient

from producer_service import create_app
from producer_service.errors import BrokerUnavailableError
from shared.runtime.settings import Settings
from tests.support import ROOT
from tests.support.fakes import RecordingPublisher
from tests.support.metrics import sample_value
from tests.support.samples import event_body

_REFUSAL = BrokerUnavailableError("Kafka is away", headers={"Retry-After": "7"})


class _Refusing(RecordingPublisher):
    """A publisher that refuses every call with an ApiError."""

    def ready(self) -> bool:
        raise _REFUSAL


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/readyz", None), ("POST", "/biometrics", event_body())],
    ids=["starlette-route", "ingestion-route"],
)
def test_an_api_error_raised_in_any_route_is_answered_in_the_one_shape_with_the_request_id(
    settings: Settings, caplog: pytest.LogCaptureFixture, method: str, path: str, body: object
) -> None:
    publisher = _Refusing(settings)
    publisher.failure = _REFUSAL
    with (
        TestClient(create_app(settings, lambda _: publisher)) as client,
        caplog.at_level(logging.INFO, logger="producer_service.requests"),
    ):
        response = client.request(method, path, json=body, headers={"X-Request-ID": "r-api"})
        metrics = client.get("/metrics").text

    assert response.status_code == 503
    assert response.headers["x-request-id"] == "r-api"
    assert response.headers["retry-after"] == "7"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "broker_unavailable",
        "message": "Kafka is away",
        "details": [],
    }
    assert sample_value(metrics, 'biometrics_errors_total{kind="broker_unavailable"}') == 1
    assert (
        sample_value(metrics, f'biometrics_http_requests_total{{route="{path}",status="503"}}') == 1
    )
    [line] = [r for r in caplog.records if getattr(r, "request_id", None) == "r-api"]
    assert (line.status, line.path) == (503, path)  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.exc_info]  # an ApiError is no crash


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "allow"),
    [
        ("GET", "/no-such-page", 404, "not_found", None),
        ("POST", "/healthz", 405, "method_not_allowed", "GET, HEAD"),
        ("GET", "/docs/assets/no-such-file.js", 404, "not_found", None),
        ("DELETE", "/docs/assets/swagger-ui.css", 405, "method_not_allowed", "GET, HEAD"),
        ("GET", "/biometrics", 405, "method_not_allowed", "POST"),
    ],
)
def test_routing_refusals_have_the_one_shape_the_request_id_and_one_count(
    client: TestClient, method: str, path: str, status: int, code: str, allow: str | None
) -> None:
    response = client.request(method, path, headers={"X-Request-ID": "r-route"})
    metrics = client.get("/metrics").text

    assert response.status_code == status
    assert response.headers["x-request-id"] == "r-route"
    # Starlette keeps a route's methods in a set: the header's order is not fixed.
    listed = response.headers.get("allow")
    assert (None if listed is None else set(listed.split(", "))) == (
        None if allow is None else set(allow.split(", "))
    )
    answer = response.json()
    assert (answer["error"], answer["details"]) == (code, [])
    assert sample_value(metrics, f'biometrics_errors_total{{kind="{code}"}}') == 1
    route = path if path in ("/healthz", "/biometrics") else "other"
    requests = f'biometrics_http_requests_total{{route="{route}",status="{status}"}}'
    assert sample_value(metrics, requests) == 1


def test_every_answer_has_exactly_one_request_id(client: TestClient) -> None:
    for method, path in [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/asyncapi.json"),
        ("GET", "/docs"),
        ("GET", "/nope"),
        ("POST", "/biometrics"),
    ]:
        response = client.request(method, path, headers={"X-Request-ID": "r-one"})
        assert response.headers.get_list("x-request-id") == ["r-one"], path


def test_readyz_is_503_until_the_publisher_is_open(
    settings: Settings, publisher: RecordingPublisher
) -> None:
    app = create_app(settings, lambda _: publisher)
    closed = TestClient(app)  # not entered: the lifespan has not run
    assert closed.get("/readyz").status_code == 503
    assert closed.get("/healthz").status_code == 200
    with TestClient(app) as client:
        assert client.get("/readyz").json() == {"status": "ready"}


def test_no_module_of_the_producer_imports_pydantic() -> None:
    """pydantic is for the settings (shared.runtime.settings); the answers are msgspec types."""
    importers = []
    for module in sorted((ROOT / "producer_service").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name.split(".")[0] == "pydantic" for name in names):
                importers.append(module.name)
    assert importers == []
