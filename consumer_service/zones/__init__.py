"""The heart-rate zone processor: Biometrics in, HeartRateZoneReached out, exactly once."""

from consumer_service.zones.service import instance_partitions, process_zones, zone_clients
from consumer_service.zones.transactions import (
    TRANSACTION_COMMITTED,
    AbortFailedError,
    FencedError,
    TransactionalProducer,
    TransactionCounts,
    consume_transactionally,
)
from consumer_service.zones.transform import Output, ZoneTransform

__all__ = [
    "TRANSACTION_COMMITTED",
    "AbortFailedError",
    "FencedError",
    "Output",
    "TransactionCounts",
    "TransactionalProducer",
    "ZoneTransform",
    "consume_transactionally",
    "instance_partitions",
    "process_zones",
    "zone_clients",
]
