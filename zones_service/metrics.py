"""ZoneMetrics: the zone processor's Prometheus metrics, in a registry of its own.

Transactions and records are counted as they happen; the partitions owned and the lag per
partition are read from the consumer when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

# The lag of each owned partition: its last stable offset minus the next offset to process, or
# None while either is unknown.
LagReader = Callable[[], Mapping[TopicPartition, int | None]]


class ZoneMetrics:
    """Transactions committed and aborted, records read, zone events and dead letters produced,
    copies dropped, partitions owned and their lag."""

    def __init__(self, lag: LagReader) -> None:
        self.registry = CollectorRegistry()
        self.committed = Counter(
            "biometrics_zone_transactions_committed",
            "Transactions committed (one per partition and batch)",
            registry=self.registry,
        )
        self.aborted = Counter(
            "biometrics_zone_transactions_aborted",
            "Transactions aborted; their records are read again",
            registry=self.registry,
        )
        self.records = Counter(
            "biometrics_zone_records_processed",
            "Input records whose transaction committed",
            registry=self.registry,
        )
        self.produced = Counter(
            "biometrics_zone_records_produced",
            "Zone events and dead letters committed",
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "biometrics_records_dead_lettered",
            "Records set aside in the dead-letter topic, in committed transactions",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "biometrics_duplicates_dropped",
            "Copies of events already handled (the same idempotency key), dropped in committed "
            "transactions",
            registry=self.registry,
        )
        self.registry.register(_Partitions(lag))


class _Partitions:
    def __init__(self, lag: LagReader) -> None:
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        lags = self._lag()
        owned = GaugeMetricFamily(
            "biometrics_zone_partitions_owned", "Input partitions this instance owns"
        )
        owned.add_metric([], len(lags))
        yield owned
        lag = GaugeMetricFamily(
            "biometrics_zone_lag",
            "Records of an owned partition not yet processed (last stable offset - position)",
            labels=["topic", "partition"],
        )
        for tp, behind in sorted(lags.items()):
            if behind is not None:
                lag.add_metric([tp.topic, str(tp.partition)], behind)
        yield lag
