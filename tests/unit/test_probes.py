"""The probes every service serves: /healthz, /readyz as the service's readiness says, /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from starlette.testclient import TestClient

from shared.runtime.probes import create_probe_app


class _Readiness:
    def __init__(self) -> None:
        self.ready = True

    def __call__(self) -> bool:
        return self.ready


def test_the_probes_answer_alive_readiness_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("probe_test_things", "Things", registry=registry).inc(3)
    readiness = _Readiness()
    client = TestClient(create_probe_app(registry, readiness))

    assert client.get("/healthz").json() == {"status": "ok"}
    assert (client.get("/readyz").status_code, client.get("/readyz").json()) == (
        200,
        {"status": "ready"},
    )
    readiness.ready = False
    unavailable = client.get("/readyz")
    assert (unavailable.status_code, unavailable.json()) == (503, {"status": "unavailable"})
    assert client.get("/healthz").status_code == 200
    assert "probe_test_things_total 3.0" in client.get("/metrics").text


def test_metrics_carry_readiness_as_a_gauge_that_follows_readyz() -> None:
    readiness = _Readiness()
    client = TestClient(create_probe_app(CollectorRegistry(), readiness))

    assert "biometrics_ready 1.0" in client.get("/metrics").text.splitlines()
    readiness.ready = False
    assert "biometrics_ready 0.0" in client.get("/metrics").text.splitlines()


def test_a_readiness_that_raises_is_not_ready_on_metrics_either() -> None:
    def raising() -> bool:
        raise RuntimeError("the broker check broke")

    client = TestClient(create_probe_app(CollectorRegistry(), raising))

    assert "biometrics_ready 0.0" in client.get("/metrics").text.splitlines()


def test_metrics_carry_the_process_cpu_and_memory() -> None:
    client = TestClient(create_probe_app(CollectorRegistry(), _Readiness()))

    names = {line.split(" ")[0] for line in client.get("/metrics").text.splitlines()}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
