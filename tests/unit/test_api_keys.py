"""Devices authenticate with Authorization: Bearer <key> when http.require_api_key is on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from producer_service import create_app
from shared.runtime.settings import Settings
from tests.support.fakes import RecordingPublisher
from tests.support.samples import event_body
from tests.support.settings import with_changes

KEY = "device-key-0123456789"


@pytest.fixture
def guarded(settings: Settings, publisher: RecordingPublisher) -> Iterator[TestClient]:
    keys = [SecretStr("other-key-0123456789"), SecretStr(KEY)]
    settings = with_changes(settings, http={"require_api_key": True, "api_keys": keys})
    with TestClient(create_app(settings, lambda _: publisher)) as client:
        yield client


def test_no_key_is_401_with_a_bearer_challenge(
    guarded: TestClient, publisher: RecordingPublisher
) -> None:
    response = guarded.post("/biometrics", json=event_body())
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert publisher.published == []


@pytest.mark.parametrize(
    "header", ["Bearer wrong-key-0123456789", "Bearer " + KEY + "x", "Bearer " + KEY[:-1]]
)
def test_an_unknown_key_is_403(
    guarded: TestClient, publisher: RecordingPublisher, header: str
) -> None:
    response = guarded.post(
        "/biometrics/batch", json=[event_body()], headers={"Authorization": header}
    )
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert publisher.published == []


@pytest.mark.parametrize("header", ["Basic " + KEY, KEY, "Bearer", "Bearer   "])
def test_a_malformed_authorization_header_is_401(guarded: TestClient, header: str) -> None:
    assert (
        guarded.post(
            "/biometrics", json=event_body(), headers={"Authorization": header}
        ).status_code
        == 401
    )


def test_a_known_key_is_accepted(guarded: TestClient, publisher: RecordingPublisher) -> None:
    response = guarded.post(
        "/biometrics", json=event_body(), headers={"Authorization": f"Bearer {KEY}"}
    )
    assert response.status_code == 202
    assert len(publisher.published) == 1


def test_probes_metrics_and_docs_stay_open(guarded: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/asyncapi.json", "/docs"):
        assert guarded.get(path).status_code == 200, path


def test_the_openapi_document_declares_the_bearer_scheme(guarded: TestClient) -> None:
    operation = guarded.get("/openapi.json").json()["paths"]["/biometrics"]["post"]
    assert operation["security"] == [{"apiKey": []}]
    assert {"401", "403"} <= set(operation["responses"])


def test_without_require_api_key_no_header_is_needed(client: TestClient) -> None:
    assert client.post("/biometrics", json=event_body()).status_code == 202
