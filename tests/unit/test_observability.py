from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from tests.support.samples import event_body


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_an_incoming_request_id_is_echoed_and_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="producer_service.requests"):
        response = client.post("/biometrics", json=event_body(), headers={"X-Request-ID": "abc-1"})
    assert response.headers["x-request-id"] == "abc-1"
    [entry] = [r for r in caplog.records if r.getMessage() == "request"]
    assert (entry.request_id, entry.status, entry.path) == ("abc-1", 202, "/biometrics")  # type: ignore[attr-defined]


@pytest.mark.parametrize("incoming", [None, "", "x" * 500, "bad id\nwith newline"])
def test_a_missing_or_unusable_request_id_is_replaced_by_a_fresh_one(
    client: TestClient, incoming: str | None
) -> None:
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    first = client.get("/healthz", headers=headers).headers["x-request-id"]
    second = client.get("/healthz", headers=headers).headers["x-request-id"]
    assert len(first) == 32 and first != second
    assert all(c in "0123456789abcdef" for c in first + second)


def test_metrics_count_requests_by_route_and_status_and_errors_by_kind(client: TestClient) -> None:
    client.post("/biometrics", json=event_body())
    client.post("/biometrics", json=event_body(maxHeartRate=1))
    client.get("/no-such-page")
    samples = _samples(client)
    assert (
        samples[("biometrics_http_requests_total", (("route", "/biometrics"), ("status", "202")))]
        == 1
    )
    assert (
        samples[("biometrics_http_requests_total", (("route", "/biometrics"), ("status", "422")))]
        == 1
    )
    assert samples[("biometrics_http_requests_total", (("route", "other"), ("status", "404")))] == 1
    assert samples[("biometrics_errors_total", (("kind", "schema_violation"),))] == 1
    assert samples[("biometrics_errors_total", (("kind", "not_found"),))] == 1
