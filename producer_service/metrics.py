"""ProducerMetrics: the producer's Prometheus metrics, in a registry of the app's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ProducerMetrics:
    """Requests, produce latency, records and bytes produced, records in flight, errors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "biometrics_http_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "biometrics_produce_latency_seconds",
            "Time from handing records to the Kafka client to their acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.records_produced = Counter(
            "biometrics_records_produced", "Records acknowledged by Kafka", registry=self.registry
        )
        self.bytes_produced = Counter(
            "biometrics_bytes_produced",
            "Key and value bytes acknowledged by Kafka",
            registry=self.registry,
        )
        self.records_in_flight = Gauge(
            "biometrics_records_in_flight",
            "Records handed to Kafka and not yet acknowledged",
            registry=self.registry,
        )
        self.errors = Counter(
            "biometrics_errors",
            "Requests answered with an error, by its code",
            ["kind"],
            registry=self.registry,
        )

    async def endpoint(self, request: Request) -> Response:
        """GET /metrics in the Prometheus text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
