"""Whatever arrives, the producer answers 4xx or 202, never 5xx, and produces only valid events."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from shared.contracts.schema import parse_event
from tests.support.fakes import RecordingPublisher
from tests.support.samples import event_body

ACCEPTED_OR_REFUSED = {202, 400, 413, 415, 422}
EXAMPLES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


def _post(client: TestClient, path: str, body: bytes) -> Any:
    return client.post(path, content=body, headers={"content-type": "application/json"})


def _check(response: Any, publisher: RecordingPublisher, before: int) -> None:
    assert response.status_code in ACCEPTED_OR_REFUSED, response.text
    if response.status_code != 202:
        assert len(publisher.published) == before, "a refused request produced something"
        assert set(response.json()) == {"error", "message", "details"}


@EXAMPLES
@given(body=st.binary(max_size=2048))
def test_arbitrary_bytes_never_cause_a_server_error(
    client: TestClient, publisher: RecordingPublisher, body: bytes
) -> None:
    before = len(publisher.published)
    for path in ("/biometrics", "/biometrics/batch"):
        _check(_post(client, path, body), publisher, before)


@EXAMPLES
@given(value=json_values)
def test_arbitrary_json_never_causes_a_server_error(
    client: TestClient, publisher: RecordingPublisher, value: Any
) -> None:
    before = len(publisher.published)
    for path in ("/biometrics", "/biometrics/batch"):
        _check(_post(client, path, json.dumps(value).encode()), publisher, before)


@EXAMPLES
@given(
    heart_rate=st.integers(min_value=-(2**70), max_value=2**70),
    steps=st.integers(min_value=-(2**70), max_value=2**70),
    max_heart_rate=st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
)
def test_only_plausible_numbers_are_ever_produced(
    client: TestClient,
    publisher: RecordingPublisher,
    heart_rate: int,
    steps: int,
    max_heart_rate: Any,
) -> None:
    body = event_body(readings=1, maxHeartRate=max_heart_rate)
    body["heartRates"][0]["value"] = heart_rate
    body["stepCounts"][0]["value"] = steps
    before = len(publisher.published)
    response = _post(client, "/biometrics", json.dumps(body).encode())
    _check(response, publisher, before)
    plausible = (
        25 <= heart_rate <= 250
        and 0 <= steps <= 100_000
        and type(max_heart_rate) in (int, float)
        and float(max_heart_rate).is_integer()
        and 100 <= max_heart_rate <= 250
    )
    assert (response.status_code == 202) == plausible


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 60_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b'{"deviceId": "\xff\xfe"}',
        b"\xef\xbb\xbf" + orjson.dumps(event_body()),
        orjson.dumps(event_body())[:-1],
        b'{"maxHeartRate": NaN}',
        b"",
    ],
    ids=["deep-array", "deep-object", "invalid-utf8", "bom", "truncated", "nan", "empty"],
)
def test_malformed_bodies_are_400_or_422(
    client: TestClient, publisher: RecordingPublisher, body: bytes
) -> None:
    response = _post(client, "/biometrics", body)
    assert response.status_code in {400, 422}
    assert publisher.published == []


def test_a_huge_number_is_refused_not_a_crash(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    raw = orjson.dumps(event_body()).replace(
        b'"maxHeartRate":190', b'"maxHeartRate":' + b"9" * 5000
    )
    response = _post(client, "/biometrics", raw)
    assert response.status_code in {400, 422}
    assert publisher.published == []


def test_duplicate_keys_resolve_to_the_last_value_and_are_validated_as_such(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    raw = orjson.dumps(event_body())[:-1] + b',"maxHeartRate":180}'
    assert _post(client, "/biometrics", raw).status_code == 202
    assert publisher.published[-1].maxHeartRate == 180
    bad = orjson.dumps(event_body())[:-1] + b',"maxHeartRate":1}'
    assert _post(client, "/biometrics", bad).status_code == 422
    assert len(publisher.published) == 1


def test_the_published_event_is_exactly_what_was_validated(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = event_body()
    assert _post(client, "/biometrics", orjson.dumps(body)).status_code == 202
    assert publisher.published == [parse_event(orjson.dumps(body))]
