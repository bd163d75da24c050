"""ConsumerMetrics: the consumer's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ConsumerMetrics:
    """Records consumed, handled, dead-lettered and dropped as copies; batch size; commit
    latency; lag; rebalances."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.consumed = Counter(
            "biometrics_records_consumed", "Records fetched from Kafka", registry=self.registry
        )
        self.handled = Counter(
            "biometrics_records_handled", "Records whose line was written", registry=self.registry
        )
        self.dead_lettered = Counter(
            "biometrics_records_dead_lettered",
            "Records set aside in the dead-letter topic",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "biometrics_duplicates_dropped",
            "Copies of events already handled (the same idempotency key), dropped",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "biometrics_batch_size",
            "Records per fetched batch",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.commit_latency = Histogram(
            "biometrics_commit_latency_seconds",
            "Time taken by an offset commit",
            buckets=_COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.rebalances = Counter(
            "biometrics_consumer_rebalances",
            "Assignments received from the group, one per rebalance this member took part in",
            registry=self.registry,
        )
        self.lag = Gauge(
            "biometrics_consumer_lag",
            "Records behind the end of the partition (end offset minus committed offset)",
            ["topic", "partition"],
            registry=self.registry,
        )
