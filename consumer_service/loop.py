"""consume: the poll-handle-commit loop, independent of Kafka so it can be driven by a fake."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

_log = logging.getLogger(__name__)

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]
Handler = Callable[[ConsumerRecord[Any, Any]], None]


class RecordSource(Protocol):
    """The part of AIOKafkaConsumer the loop uses."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Batch: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...


async def consume(
    source: RecordSource,
    handle: Handler,
    stop: asyncio.Event,
    *,
    poll_timeout_ms: int,
    max_records: int,
) -> int:
    """Poll, handle every record, then commit last offset + 1 per partition, until stop is set.

    The batch in hand is always finished and committed before returning. Returns the number of
    records handled. An exception from `handle` propagates before the commit, so those records
    are delivered again after a restart (at-least-once).
    """
    handled = 0
    while not stop.is_set():
        batch = await source.getmany(timeout_ms=poll_timeout_ms, max_records=max_records)
        if not batch:
            continue
        for records in batch.values():
            for record in records:
                handle(record)
        handled += sum(len(records) for records in batch.values())
        await _commit(
            source, {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        )
    return handled


async def _commit(source: RecordSource, offsets: Mapping[TopicPartition, int]) -> None:
    try:
        await source.commit(offsets)
    except CommitFailedError:
        # A rebalance took the partitions away; their new owner re-reads from the last commit.
        _log.warning("commit failed after a rebalance; records will be delivered again")
