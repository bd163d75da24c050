"""An unexpected exception in any handler: a 500 in the JSON error shape, with the request's id,
counted, and logged once with its traceback."""

from __future__ import annotations

import logging
import re

import pytest
from starlette.testclient import TestClient

from producer_service import create_app
from shared.runtime.settings import Settings
from tests.support.fakes import RecordingPublisher
from tests.support.samples import event_body


class _Broken(RecordingPublisher):
    """A publisher whose every call fails in a way nothing foresaw."""

    def ready(self) -> bool:
        raise RuntimeError("the readiness check broke")


@pytest.fixture
def broken_client(settings: Settings) -> TestClient:
    publisher = _Broken(settings)
    publisher.failure = RuntimeError("the publisher broke")
    return TestClient(create_app(settings, lambda _: publisher))


@pytest.mark.parametrize(
    ("method", "path", "body", "raised"),
    [
        ("GET", "/readyz", None, "the readiness check broke"),  # a route Starlette serves
        ("POST", "/biometrics", event_body(), "the publisher broke"),  # an ingestion route
    ],
)
def test_an_unexpected_error_is_a_500_with_the_request_id_counted_and_logged_once(
    broken_client: TestClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: object,
    raised: str,
) -> None:
    with broken_client as client, caplog.at_level(logging.INFO):
        response = client.request(method, path, json=body, headers={"X-Request-ID": "req-500"})
        metrics = client.get("/metrics").text

    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    assert response.json() == {
        "error": "internal_error",
        "message": "internal error",
        "details": [],
    }
    assert raised not in response.text  # the traceback is for the log, not the client
    assert re.search(r'^biometrics_errors_total\{kind="internal_error"\} 1\.0$', metrics, re.M)
    assert re.search(rf'route="{path}",status="500"\}} 1\.0$', metrics, re.M)
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1, [record.getMessage() for record in tracebacks]
    [logged] = tracebacks
    assert (logged.getMessage(), str(logged.exc_info[1])) == ("unhandled error", raised)
