"""Kafka, as every service uses it: the aiokafka adapter, client options, connecting and retrying,
topics, records and their headers, batching, dedupe and the Schema Registry."""

__all__ = [
    "adapter",
    "batcher",
    "connecting",
    "dedupe",
    "headers",
    "options",
    "records",
    "registry",
    "topics",
]
