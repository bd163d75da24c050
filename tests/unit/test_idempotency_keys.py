"""Idempotency-Key on the ingestion routes: a retry gets the first answer and produces nothing."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator
from uuid import uuid4

import httpx2 as httpx
import msgspec
import pytest
from starlette.testclient import TestClient

from producer_service import Delivery, PublishError, create_app
from producer_service.idempotency import (
    ENTRY_OVERHEAD_BYTES,
    IdempotencyKeys,
    fingerprint,
    parse_key,
)
from shared.runtime.settings import Settings
from tests.support.fakes import RecordingPublisher
from tests.support.metrics import sample_value
from tests.support.polling import eventually
from tests.support.samples import event_body
from tests.support.servers import app_client
from tests.support.settings import with_changes


@pytest.fixture
def client(settings: Settings, publisher: RecordingPublisher) -> Iterator[TestClient]:
    with TestClient(create_app(settings, lambda _: publisher)) as client:
        yield client


def _post(client: TestClient, key: str, body: object, path: str = "/biometrics") -> httpx.Response:
    return client.post(path, json=body, headers={"Idempotency-Key": key})


def test_a_retry_after_the_answer_gets_the_same_202_and_produces_nothing(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = event_body()
    first, retry = _post(client, '"key-1"', body), _post(client, "key-1", body)
    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.content == first.content
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(publisher.published) == 1
    assert publisher.keys == [[b"key-1"]]
    metrics = client.get("/metrics").text
    assert "biometrics_idempotent_replays_total 1.0" in metrics
    assert "biometrics_idempotency_keys 1.0" in metrics
    # Another key is another request.
    assert _post(client, "key-2", body).json()["offset"] == first.json()["offset"] + 1


def test_each_event_of_a_batch_carries_the_key_and_its_place(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    batch = [event_body(), event_body(), event_body()]
    first = _post(client, "b-1", batch, "/biometrics/batch")
    retry = _post(client, "b-1", batch, "/biometrics/batch")
    assert retry.content == first.content
    assert publisher.keys == [[b"b-1#0", b"b-1#1", b"b-1#2"]]
    assert publisher.published and len(publisher.published) == 3


def test_requests_without_a_key_are_not_remembered(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = event_body()
    client.post("/biometrics", json=body)
    client.post("/biometrics", json=body)
    assert len(publisher.published) == 2
    assert publisher.keys == [None, None]


def test_the_same_key_with_another_request_is_422(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    device = str(uuid4())
    assert _post(client, "k", event_body(device)).status_code == 202
    other_body = _post(client, "k", event_body(device, readings=2))
    other_route = _post(client, "k", [event_body(device)], "/biometrics/batch")
    for answer in (other_body, other_route):
        assert answer.status_code == 422
        assert answer.json()["error"] == "idempotency_key_reused"
    assert len(publisher.published) == 1


@pytest.mark.parametrize("key", ["", '""', "a b", "a#1", "é", "x" * 129, '"unterminated'])
def test_a_malformed_key_is_400_and_nothing_is_produced(
    client: TestClient, publisher: RecordingPublisher, key: str
) -> None:
    answer = client.post(
        "/biometrics", json=event_body(), headers={"Idempotency-Key": key.encode("utf-8")}
    )
    assert answer.status_code == 400, key
    assert answer.json()["error"] == "invalid_idempotency_key"
    assert publisher.published == []


def test_a_key_is_required_when_the_setting_says_so(
    settings: Settings, publisher: RecordingPublisher
) -> None:
    required = with_changes(settings, http={"require_idempotency_key": True})
    with TestClient(create_app(required, lambda _: publisher)) as client:
        missing = client.post("/biometrics", json=event_body())
        given = _post(client, "k-1", event_body())
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_idempotency_key"
    assert 'rel="help"' in missing.headers["link"]
    assert given.status_code == 202
    assert len(publisher.published) == 1


def test_a_request_that_failed_is_not_remembered(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = event_body()
    publisher.failure = PublishError("timed out", 0, 1)
    assert _post(client, "k", body).status_code == 503
    publisher.failure = None
    retry = _post(client, "k", body)
    assert retry.status_code == 202
    assert "idempotent-replayed" not in retry.headers
    assert len(publisher.published) == 1


async def test_a_retry_while_the_first_is_under_way_waits_for_its_answer(
    settings: Settings, publisher: RecordingPublisher
) -> None:
    publisher.gate = asyncio.Event()
    body = event_body()
    async with app_client(create_app(settings, lambda _: publisher)) as client:
        both = [asyncio.create_task(_post_async(client, "k", body)) for _ in range(2)]
        await _until_metric(client, "biometrics_idempotent_waits_total", 1)
        assert not any(request.done() for request in both)
        publisher.gate.set()
        first, retry = sorted(await asyncio.gather(*both), key=_replayed)
        metrics = (await client.get("/metrics")).text
    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.content == first.content
    assert (_replayed(first), _replayed(retry)) == (False, True)
    assert len(publisher.published) == 1
    assert sample_value(metrics, "biometrics_idempotent_replays_total") == 1


async def test_a_retry_waiting_on_a_first_that_fails_is_produced_itself(
    settings: Settings, publisher: RecordingPublisher
) -> None:
    publisher.gate, publisher.failure = asyncio.Event(), PublishError("timed out", 0, 1)
    body = event_body()
    async with app_client(create_app(settings, lambda _: publisher)) as client:
        both = [asyncio.create_task(_post_async(client, "k", body)) for _ in range(2)]
        await _until_metric(client, "biometrics_idempotent_waits_total", 1)
        # The first request, held at the gate, fails; the retry, produced after it, does not.
        publisher.failure = None
        publisher.gate.set()
        failed, retry = sorted(await asyncio.gather(*both), key=lambda answer: -answer.status_code)
    assert (failed.status_code, retry.status_code) == (503, 202)
    assert not _replayed(retry)
    assert len(publisher.published) == 1
    assert publisher.keys == [[b"k"]]


def test_keys_are_forgotten_after_the_window_and_beyond_the_byte_budget(
    settings: Settings, publisher: RecordingPublisher
) -> None:
    # Each answer here is the same size: offsets 0 to 9.
    entry = ENTRY_OVERHEAD_BYTES + len(msgspec.json.encode(Delivery(settings.kafka.topic, 0, 0)))
    http = {"idempotency_window_s": 10, "idempotency_max_bytes": 4 * entry}
    now = [0.0]
    app = create_app(with_changes(settings, http=http), lambda _: publisher, clock=lambda: now[0])
    body = event_body()
    with TestClient(app) as client:

        def post(key: str, sent: object = body) -> httpx.Response:
            answer = _post(client, key, sent)
            assert answer.status_code in (202, 422), answer.text
            return answer

        def metric(name: str) -> float:
            return sample_value(client.get("/metrics").text, name)

        for number in range(3):
            post(f"k{number}")
        assert metric("biometrics_idempotency_keys") == 3
        assert metric("biometrics_idempotency_bytes") == 3 * entry
        assert _replayed(post("k0"))
        assert len(publisher.published) == 3
        assert metric("biometrics_idempotent_replays_total") == 1
        post("k3")  # at the budget
        post("k4")  # over it: down to 90% of it, k0 and k1 go
        assert metric("biometrics_idempotency_keys") == 3
        assert not _replayed(post("k0"))
        assert len(publisher.published) == 6  # produced again
        now[0] = 10.5
        post("k5")
        assert metric("biometrics_idempotency_keys") == 1
        assert post("k5", event_body(readings=2)).status_code == 422
        assert metric("biometrics_idempotency_keys_reused_total") == 1


def test_keys_of_the_draft_and_bare_keys_are_accepted() -> None:
    assert parse_key(b'"8e03978e-40d5-43e8-bc93-6894a57f9324"') == (
        b"8e03978e-40d5-43e8-bc93-6894a57f9324"
    )
    assert parse_key(b" 01HZX.abc_d:e-f ") == b"01HZX.abc_d:e-f"


async def test_what_a_key_is_counted_is_what_it_takes() -> None:
    keys = IdempotencyKeys(window_s=600, max_bytes=1 << 30)
    answer = b'{"topic":"BiometricsImported","partition":3,"offset":123456789}'

    async def produce() -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
        return answer[:-1] + b"}", ()  # an answer of its own, as each request has

    count = 20_000
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(count):
            key = str(uuid4()).encode()
            await keys.answer((0, key), fingerprint("/biometrics", key), produce)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_key = (after - before) / count
    counted = ENTRY_OVERHEAD_BYTES + len(answer)
    # What is counted against http.idempotency_max_bytes is what the key really takes.
    assert counted * 0.9 <= per_key <= counted * 1.1, (per_key, counted)
    assert keys.held_bytes == count * counted


async def _post_async(client: httpx.AsyncClient, key: str, body: object) -> httpx.Response:
    return await client.post("/biometrics", json=body, headers={"Idempotency-Key": key})


def _replayed(answer: httpx.Response) -> bool:
    return answer.headers.get("idempotent-replayed") == "true"


async def _until_metric(client: httpx.AsyncClient, sample: str, value: float) -> None:
    """Give the loop to the requests under way until the app's /metrics shows `sample` at
    `value` (a retry that waits has nothing else to show)."""
    await eventually(
        lambda: client.get("/metrics"),
        lambda metrics: sample_value(metrics.text, sample) == value,
        timeout_s=5,
        interval_s=0,
        awaiting=f"{sample} {value:g} in /metrics",
    )
