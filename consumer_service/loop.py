"""consume: the poll-process-commit loop, independent of Kafka so it can be driven by a fake.

Offsets are committed as last handled offset + 1 per partition: after each batch, and, through
CommitOnRevoke, when a rebalance takes partitions away mid-batch. A record is counted as
handled only once `process` has returned for it, so nothing unhandled is ever committed past.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

_log = logging.getLogger(__name__)

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]
Process = Callable[[ConsumerRecord[Any, Any]], Awaitable[None]]


class RecordSource(Protocol):
    """The part of AIOKafkaConsumer the loop uses."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Batch: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    def assignment(self) -> Collection[TopicPartition]: ...


class PendingOffsets:
    """Offsets handled but not yet committed, per partition."""

    def __init__(self) -> None:
        self._offsets: dict[TopicPartition, int] = {}

    def handled(self, record: ConsumerRecord[Any, Any]) -> None:
        """Note that the record is done with."""
        self._offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1

    def take(
        self, partitions: Collection[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Remove and return the pending offsets (of the given partitions only, if named)."""
        if partitions is None:
            taken, self._offsets = self._offsets, {}
            return taken
        return {tp: self._offsets.pop(tp) for tp in partitions if tp in self._offsets}

    def restore(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Put back offsets whose commit failed, unless newer ones were handled since."""
        for tp, offset in offsets.items():
            self._offsets.setdefault(tp, offset)


class CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit what was handled on partitions a rebalance is about to take away."""

    def __init__(self, pending: PendingOffsets) -> None:
        self._pending = pending
        self.source: RecordSource | None = None

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        offsets = self._pending.take(revoked)
        if offsets and self.source is not None:
            _log.info("committing before a rebalance", extra={"partitions": len(offsets)})
            await _commit(self.source, offsets, self._pending)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        _log.info(
            "partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)}
        )


async def consume(
    source: RecordSource,
    process: Process,
    stop: asyncio.Event,
    pending: PendingOffsets,
    *,
    poll_timeout_ms: int,
    max_records: int,
) -> int:
    """Poll, process every record, commit, until stop is set; return how many were processed.

    The batch in hand is always finished and committed before returning. An exception from
    `process` propagates before the commit, so that record is read again after a restart.
    """
    processed = 0
    while not stop.is_set():
        batch = await source.getmany(timeout_ms=poll_timeout_ms, max_records=max_records)
        for tp, records in batch.items():
            for record in records:
                if tp not in source.assignment():
                    break  # revoked mid-batch: the new owner reads on from the committed offset
                await process(record)
                pending.handled(record)
                processed += 1
        await _commit(source, pending.take(), pending)
    return processed


async def _commit(
    source: RecordSource, offsets: dict[TopicPartition, int], pending: PendingOffsets
) -> None:
    assigned = source.assignment()
    offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
    if not offsets:
        return
    try:
        await source.commit(offsets)
    except KafkaError as error:
        # Not fatal: the records stay handled, the next commit carries these offsets too, and if
        # the partitions moved, their new owner reads them again (at-least-once).
        pending.restore(offsets)
        _log.warning("commit failed; will retry with the next batch", extra={"error": repr(error)})
