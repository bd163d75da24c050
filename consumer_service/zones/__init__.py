"""The heart-rate zone processor: Biometrics in, HeartRateZoneReached out, exactly once."""

from consumer_service.zones.service import (
    NoPartitionsError,
    instance_partitions,
    process_zones,
    run_zones,
    zone_clients,
)
from consumer_service.zones.transactions import (
    TRANSACTION_COMMITTED,
    AbortFailedError,
    FencedError,
    SeekableSource,
    TransactionalProducer,
    TransactionCounts,
    consume_transactionally,
    next_offsets,
)
from consumer_service.zones.transform import Output, ZoneTransform

__all__ = [
    "TRANSACTION_COMMITTED",
    "AbortFailedError",
    "FencedError",
    "NoPartitionsError",
    "Output",
    "SeekableSource",
    "TransactionCounts",
    "TransactionalProducer",
    "ZoneTransform",
    "consume_transactionally",
    "instance_partitions",
    "next_offsets",
    "process_zones",
    "run_zones",
    "zone_clients",
]
