from __future__ import annotations

import orjson
from starlette.testclient import TestClient

from producer_service import PublishError, create_app
from producer_service.publisher import OverloadedError
from shared.runtime.settings import Settings
from tests.support.fakes import RecordingPublisher
from tests.support.samples import event_body


def _post(client: TestClient, path: str, body: object) -> object:
    return client.post(
        path, content=orjson.dumps(body), headers={"content-type": "application/json"}
    )


def test_an_accepted_event_answers_202_with_its_coordinates(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = event_body()
    response = client.post("/biometrics", json=body)
    assert response.status_code == 202
    assert response.json() == {"topic": "BiometricsImported", "partition": 0, "offset": 0}
    assert [str(e.deviceId) for e in publisher.published] == [body["deviceId"]]


def test_a_batch_answers_with_each_records_coordinates(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    response = client.post("/biometrics/batch", json=[event_body(), event_body()])
    assert response.status_code == 202
    assert [r["offset"] for r in response.json()["records"]] == [0, 1]
    assert len(publisher.published) == 2


def test_malformed_json_is_400_and_publishes_nothing(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    response = client.post(
        "/biometrics", content=b'{"deviceId": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    assert publisher.published == []


def test_schema_violations_are_422_naming_each_field_by_path(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = event_body(maxHeartRate=20)
    body["heartRates"][1]["value"] = 400
    response = client.post("/biometrics", json=body)
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "schema_violation"
    assert {d["path"] for d in error["details"]} == {"maxHeartRate", "heartRates[1].value"}
    assert publisher.published == []


def test_one_bad_event_rejects_the_whole_batch(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    response = client.post("/biometrics/batch", json=[event_body(), event_body(deviceId="x")])
    assert response.status_code == 422
    assert [d["path"] for d in response.json()["details"]] == ["[1].deviceId"]
    assert publisher.published == []


def test_a_batch_over_the_configured_length_is_422(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    response = client.post("/biometrics/batch", json=[event_body(readings=1)] * 11)
    assert response.status_code == 422
    assert publisher.published == []


def test_a_non_json_content_type_is_415(client: TestClient, publisher: RecordingPublisher) -> None:
    response = client.post(
        "/biometrics", content=orjson.dumps(event_body()), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert publisher.published == []


def test_a_json_content_type_with_a_charset_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/biometrics",
        content=orjson.dumps(event_body()),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 202


def test_a_body_over_the_limit_is_413(client: TestClient, publisher: RecordingPublisher) -> None:
    body = orjson.dumps([event_body(readings=200)] * 10)
    assert len(body) > 64 * 1024
    response = client.post(
        "/biometrics/batch", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert publisher.published == []


def test_a_chunked_body_over_the_limit_is_413(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    chunks = iter([b"[" + b" " * 40_000, b" " * 40_000 + b"]"])
    response = client.post(
        "/biometrics/batch", content=chunks, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert publisher.published == []


def test_an_unacknowledged_delivery_is_503_with_retry_after(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    publisher.failure = PublishError("delivery timed out", delivered=0, total=1)
    response = client.post("/biometrics", json=event_body())
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.json()["error"] == "broker_unavailable"


def test_unknown_routes_and_methods_use_the_same_error_shape(client: TestClient) -> None:
    missing = client.get("/nope")
    wrong_method = client.get("/biometrics")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")


def test_healthz_answers_while_alive(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_lifespan_opens_and_closes_the_publisher(
    settings: Settings, publisher: RecordingPublisher
) -> None:
    with TestClient(create_app(settings, lambda _: publisher)):
        assert publisher.entered and not publisher.exited
    assert publisher.exited


def test_overload_is_503_at_once_with_a_short_retry_after(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    publisher.failure = OverloadedError("20000 records await acknowledgement already")
    response = client.post("/biometrics", json=event_body())
    assert response.status_code == 503
    assert response.json()["error"] == "overloaded"
    assert response.headers["retry-after"] == "1"


def test_readyz_follows_the_publisher(client: TestClient, publisher: RecordingPublisher) -> None:
    assert client.get("/readyz").status_code == 200
    publisher.is_ready = False
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_the_start_up_hook_runs_once_the_publisher_is_open(settings: Settings) -> None:
    publisher = RecordingPublisher(settings)
    seen: list[bool] = []
    app = create_app(
        settings, lambda _: publisher, on_started=lambda: seen.append(publisher.entered)
    )
    assert seen == []
    with TestClient(app):
        assert seen == [True]
    assert publisher.exited
