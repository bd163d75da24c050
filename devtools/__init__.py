"""Developer tooling: a real local Apache Kafka broker for tests and manual runs
(`python -m devtools` runs one until Ctrl-C)."""

from __future__ import annotations

from devtools.local_kafka import LocalKafka, ensure_kafka_classpath

__all__ = ["LocalKafka", "ensure_kafka_classpath"]
