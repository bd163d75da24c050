"""ProducerMetrics: the producer's Prometheus metrics, in a registry of the app's own.

Requests and errors are counted on every request, so they are plain dictionaries of integers
(an increment of a labelled prometheus_client Counter costs far more), read by a collector when
/metrics is scraped (shared.runtime.probes). Produce latency and the record counters move once per
batch.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ProducerMetrics:
    """Requests, produce latency, records and bytes produced, records in flight, errors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests: Tally[tuple[str, int]] = Tally()
        self.errors: Tally[str] = Tally()
        self.registry.register(_Tallies(self))
        self.produce_latency = Histogram(
            "biometrics_produce_latency_seconds",
            "Time from a record batch's first record to its acknowledgement, per batch",
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
        self.devices_remembered = Gauge(
            "biometrics_rate_limited_devices",
            "Devices whose rate bucket is held (heard from within device_burst / device_rate_per_s"
            " seconds); 0 with device limits off",
            registry=self.registry,
        )


class _Tallies:
    """Exposes the request and error tallies as Prometheus counters."""

    def __init__(self, metrics: ProducerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "biometrics_http_requests",
            "HTTP requests answered, by route and status",
            labels=["route", "status"],
        )
        for (route, status), count in sorted(self._metrics.requests.items()):
            requests.add_metric([route, str(status)], count)
        yield requests
        errors = CounterMetricFamily(
            "biometrics_errors", "Requests answered with an error, by its code", labels=["kind"]
        )
        for kind, count in sorted(self._metrics.errors.items()):
            errors.add_metric([kind], count)
        yield errors


class KeyCounts(Protocol):
    """What IdempotencyKeys counts."""

    replayed: int
    waited: int
    reused: int

    def __len__(self) -> int: ...

    @property
    def held_bytes(self) -> int: ...


class IdempotencyMetrics:
    """Idempotency keys: retries answered from memory, retries that waited for their first
    request, keys sent again with another request, and what is remembered."""

    def __init__(self, keys: KeyCounts) -> None:
        self._keys = keys

    def collect(self) -> Iterator[Metric]:
        keys = self._keys
        for name, help_text, value in (
            ("biometrics_idempotent_replays", "Retries answered from memory", keys.replayed),
            (
                "biometrics_idempotent_waits",
                "Retries that came while their first request was under way",
                keys.waited,
            ),
            (
                "biometrics_idempotency_keys_reused",
                "Idempotency keys sent again with another request (422)",
                keys.reused,
            ),
        ):
            yield CounterMetricFamily(name, help_text, value=value)
        yield GaugeMetricFamily(
            "biometrics_idempotency_keys", "Idempotency keys remembered", value=len(keys)
        )
        yield GaugeMetricFamily(
            "biometrics_idempotency_bytes",
            "What the remembered answers take, as counted against http.idempotency_max_bytes",
            value=keys.held_bytes,
        )
