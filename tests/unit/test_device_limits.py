"""The rate per device through the app: 429 with Retry-After over it, the RateLimit fields on
every answer of the ingestion routes, batches counted by event, buckets per API key."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from producer_service import create_app
from shared.runtime.settings import Settings
from tests.support.fakes import RecordingPublisher
from tests.support.samples import event_body
from tests.support.settings import with_changes

BURST = 3
POLICY = f'"device";q={BURST};w=3000'
KEYS = ["device-key-a-0123456789", "device-key-b-0123456789"]


def _client(settings: Settings, publisher: RecordingPublisher, **http: object) -> TestClient:
    # One token in 1000 s, and the app's clock stands still: nothing refills while a test runs.
    limits = {"device_rate_per_s": 0.001, "device_burst": BURST, **http}
    app = create_app(with_changes(settings, http=limits), lambda _: publisher, clock=_still_clock)
    return TestClient(app)


def _still_clock() -> float:
    return 1000.0


@pytest.fixture
def limited(settings: Settings, publisher: RecordingPublisher) -> Iterator[TestClient]:
    with _client(settings, publisher) as client:
        yield client


def test_a_device_over_its_burst_gets_429_with_retry_after_and_nothing_is_published(
    limited: TestClient, publisher: RecordingPublisher
) -> None:
    device = str(uuid4())
    answers = [limited.post("/biometrics", json=event_body(device)) for _ in range(BURST + 1)]
    assert [answer.status_code for answer in answers] == [202] * BURST + [429]
    assert [answer.headers["ratelimit"] for answer in answers[:BURST]] == [
        '"device";r=2;t=1000',
        '"device";r=1;t=2000',
        '"device";r=0;t=3000',
    ]
    refused = answers[-1]
    assert refused.json()["error"] == "rate_limited"
    assert refused.headers["retry-after"] == "1000"
    assert refused.headers["ratelimit"] == '"device";r=0;t=3000'
    assert all(answer.headers["ratelimit-policy"] == POLICY for answer in answers)
    assert len(publisher.published) == BURST
    # Another device is not held back.
    assert limited.post("/biometrics", json=event_body()).status_code == 202


def test_a_batch_counts_its_events_per_device(
    limited: TestClient, publisher: RecordingPublisher
) -> None:
    one, other = str(uuid4()), str(uuid4())
    batch = [event_body(one), event_body(one), event_body(other)]
    accepted = limited.post("/biometrics/batch", json=batch)
    assert accepted.status_code == 202
    assert accepted.headers["ratelimit"] == '"device";r=1;t=2000'  # the fuller bucket: one's
    second = limited.post("/biometrics/batch", json=[event_body(other), event_body(one)])
    assert second.status_code == 202  # one had 1 token left, other 2
    over = limited.post("/biometrics/batch", json=[event_body(other), event_body(one)])
    assert over.status_code == 429
    # The refused batch took nothing: other still has its last token.
    assert limited.post("/biometrics", json=event_body(other)).status_code == 202
    assert len(publisher.published) == 6


def test_more_events_of_one_device_than_its_burst_in_one_batch_is_413(
    limited: TestClient, publisher: RecordingPublisher
) -> None:
    device = str(uuid4())
    answer = limited.post("/biometrics/batch", json=[event_body(device)] * (BURST + 1))
    assert answer.status_code == 413
    assert "http.device_burst" in answer.json()["message"]
    assert "retry-after" not in answer.headers
    assert publisher.published == []


def test_the_devices_held_are_a_metric(limited: TestClient) -> None:
    for _ in range(3):
        assert limited.post("/biometrics", json=event_body()).status_code == 202
    assert "biometrics_rate_limited_devices 3.0" in limited.get("/metrics").text


def test_every_answer_of_the_routes_carries_the_policy(limited: TestClient) -> None:
    invalid = limited.post("/biometrics", json={"deviceId": "x"})
    assert invalid.status_code == 422
    assert invalid.headers["ratelimit-policy"] == POLICY
    assert "ratelimit" not in invalid.headers  # no device known
    assert "ratelimit-policy" not in limited.get("/healthz").headers


def test_without_limits_no_field_is_sent(settings: Settings, publisher: RecordingPublisher) -> None:
    with TestClient(create_app(settings, lambda _: publisher)) as client:
        answer = client.post("/biometrics", json=event_body())
    assert answer.status_code == 202
    assert "ratelimit-policy" not in answer.headers and "ratelimit" not in answer.headers


def test_with_api_keys_each_key_has_its_own_bucket_per_device(
    settings: Settings, publisher: RecordingPublisher
) -> None:
    keys = [SecretStr(key) for key in KEYS]
    device = str(uuid4())
    with _client(settings, publisher, require_api_key=True, api_keys=keys) as client:

        def post(key: str) -> int:
            headers = {"Authorization": f"Bearer {key}"}
            return client.post("/biometrics", json=event_body(device), headers=headers).status_code

        assert [post(KEYS[0]) for _ in range(BURST + 1)] == [202] * BURST + [429]
        assert post(KEYS[1]) == 202


def test_the_openapi_document_declares_the_429_and_its_fields(limited: TestClient) -> None:
    operation = limited.get("/openapi.json").json()["paths"]["/biometrics"]["post"]
    refused = operation["responses"]["429"]
    assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= set(refused["headers"])
