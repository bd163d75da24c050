"""process_zones: the zone processor's poll loop, exactly once.

Each batch is handled partition by partition, each partition's records in one transaction of
that partition's producer (PartitionProducers); the partitions of a batch are committed
concurrently.

When a transaction fails it is aborted and its partition is sought back to the batch's first
offset, which is the last offset committed: every earlier batch was committed, or was sought back
in the same way. It is remembered rather than fetched, because aiokafka cannot ask the group
coordinator for stable offsets (KIP-447's ``require_stable``), so a fetch just after a commit may
return older ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import ProducerFenced

from shared.records import RecordSource, SchemaIds
from shared.settings import Settings
from zones_service.metrics import ZoneMetrics
from zones_service.partitions import PartitionProducers
from zones_service.transactions import (
    TRANSACTION_COMMITTED,
    FencedError,
    TransactionCounts,
    Transform,
    abort,
    commit_partition,
)

_log = logging.getLogger(__name__)


async def process_zones(
    consumer: RecordSource,
    owner: PartitionProducers,
    transform: Transform,
    stop: asyncio.Event,
    *,
    settings: Settings,
    metrics: ZoneMetrics | None = None,
    schema_ids: SchemaIds | None = None,
) -> TransactionCounts:
    """Poll and handle batches until stop is set; the batch in hand is finished first.

    With `schema_ids` (the transform's), the new schema ids of each batch are looked up first
    (the transform dead-letters the unknown), the batch waiting while the registry is unreachable.
    """
    counts = TransactionCounts()
    zones = settings.zones
    group_id, backoff_s = zones.group_id, zones.retry_backoff_ms / 1000
    while not stop.is_set():
        batch = await consumer.getmany(
            timeout_ms=zones.poll_timeout_ms, max_records=zones.max_poll_records
        )
        if owner.failure is not None:
            raise owner.failure
        if schema_ids is not None:
            await schema_ids.check([record for records in batch.values() for record in records])
        async with owner.lock:
            handled = [
                _handle(owner, tp, records, transform, group_id)
                for tp, records in batch.items()
                if records and _current(owner, tp, records[0].offset)
            ]
            results = await asyncio.gather(*handled)
        for records, produced in results:
            if produced is None:
                counts.aborted += 1
            else:
                counts.committed += 1
                counts.records += records
                counts.produced += produced
            if metrics is not None:
                _count(metrics, records, produced)
        if any(produced is None for _, produced in results):
            await _pause(stop, backoff_s)
    return counts


def _current(owner: PartitionProducers, tp: TopicPartition, first: int) -> bool:
    """Whether records from `first` on are this owner's to process now. Records fetched before a
    reassignment start before the partition's committed offset: dropped, and the partition is
    sought back there (read_committed may skip offsets, so a later start is fine)."""
    if tp not in owner.producers:
        return False
    if first < owner.offsets[tp]:
        owner.seek(tp, owner.offsets[tp])
        return False
    return True


async def _handle(
    owner: PartitionProducers,
    tp: TopicPartition,
    records: Sequence[ConsumerRecord[Any, Any]],
    transform: Transform,
    group_id: str,
) -> tuple[int, int | None]:
    """(records, produced) once committed, or (records, None) once aborted and sought back."""
    producer = owner.producers[tp]
    try:
        produced = await commit_partition(producer, tp, records, transform, group_id)
    except ProducerFenced as error:
        raise FencedError(
            f"partition {tp.partition} of {tp.topic} belongs to another instance now (this one "
            "stalled past zones.session_timeout_ms, or a transaction outlived "
            "zones.transaction_timeout_ms)"
        ) from error
    except Exception as error:
        await abort(producer, error)
        owner.seek(tp, records[0].offset)
        _log.warning(
            "transaction aborted; its records will be read again",
            extra={"partition": tp.partition, "records": len(records), "error": repr(error)},
        )
        return len(records), None
    owner.offsets[tp] = records[-1].offset + 1
    _log.info(
        TRANSACTION_COMMITTED,
        extra={"partition": tp.partition, "records": len(records), "produced": produced},
    )
    return len(records), produced


def _count(metrics: ZoneMetrics, records: int, produced: int | None) -> None:
    if produced is None:
        metrics.aborted.inc()
        return
    metrics.committed.inc()
    metrics.records.inc(records)
    metrics.produced.inc(produced)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if stop is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
