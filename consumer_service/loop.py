"""consume: the poll-process-flush-commit loop, independent of Kafka so a fake can drive it.

A batch is handed to the handler one partition at a time, each partition only if it is still
assigned. Offsets are committed as last handled offset + 1 per partition: after each batch, and,
through RebalanceHandler, when a rebalance takes partitions away mid-batch. The offsets committed
are those the handler's flush returns, so nothing unhandled is ever committed past.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from consumer_service.metrics import ConsumerMetrics
from shared.kafka.records import RecordSource

_log = logging.getLogger(__name__)


class GroupOffsets(Protocol):
    """The part of AIOKafkaConsumer the committer uses."""

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    def assignment(self) -> Collection[TopicPartition]: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...


class RecordHandler(Protocol):
    """Handles a partition's records at a time; flush() returns the offsets now safe to commit."""

    async def process(
        self, partition: TopicPartition, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> None: ...

    async def flush(self) -> Mapping[TopicPartition, int]: ...


class PendingOffsets:
    """Offsets handled but not yet committed, per partition."""

    def __init__(self) -> None:
        self._offsets: dict[TopicPartition, int] = {}

    def handled(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Note each partition's next offset whose records are all handled."""
        self._offsets.update(offsets)

    def take(
        self, partitions: Collection[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Remove and return the pending offsets (of the given partitions only, if named)."""
        if partitions is None:
            taken, self._offsets = self._offsets, {}
            return taken
        return {tp: self._offsets.pop(tp) for tp in partitions if tp in self._offsets}

    def restore(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Put back offsets whose commit failed, unless newer ones were processed since."""
        for tp, offset in offsets.items():
            self._offsets.setdefault(tp, offset)


class Committer:
    """Commits offsets of assigned partitions, timing each commit and updating the lag."""

    def __init__(
        self, consumer: GroupOffsets, pending: PendingOffsets, metrics: ConsumerMetrics
    ) -> None:
        self.consumer = consumer
        self.pending = pending
        self.metrics = metrics

    def assigned(self) -> Collection[TopicPartition]:
        """The partitions the group assigns this member now."""
        return self.consumer.assignment()

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit; on a failure keep the offsets pending for the next commit."""
        assigned = self.assigned()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not offsets:
            return
        started = time.perf_counter()
        try:
            await self.consumer.commit(offsets)
        except KafkaError as error:
            # Not fatal: the records stay handled, the next commit carries these offsets too,
            # and if the partitions moved, their new owner reads them again (at-least-once).
            self.pending.restore(offsets)
            _log.warning(
                "commit failed; will retry with the next batch", extra={"error": repr(error)}
            )
            return
        self.metrics.commit_latency.observe(time.perf_counter() - started)
        for tp, offset in offsets.items():
            end = self.consumer.highwater(tp)
            if end is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - offset))


Partitions = Callable[[Collection[TopicPartition]], Awaitable[None]]


class RebalanceHandler(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions go: flush and commit what was processed on them, then `on_revoked`.
    Tracks membership."""

    def __init__(
        self,
        handler: RecordHandler,
        committer: Committer,
        on_revoked: Partitions | None = None,
    ) -> None:
        self._handler = handler
        self._committer = committer
        self._on_revoked = on_revoked
        self.assigned = False

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        self.assigned = False
        self._committer.pending.handled(await self._handler.flush())
        offsets = self._committer.pending.take(revoked)
        if offsets:
            _log.info("committing before a rebalance", extra={"partitions": len(offsets)})
            await self._committer.commit(offsets)
        if self._on_revoked is not None:
            await self._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self.assigned = True
        self._committer.metrics.rebalances.inc()
        partitions = sorted(tp.partition for tp in assigned)
        _log.info("partitions assigned", extra={"partitions": partitions})


async def consume(
    source: RecordSource,
    handler: RecordHandler,
    stop: asyncio.Event,
    committer: Committer,
    *,
    poll_timeout_ms: int,
    max_records: int,
) -> int:
    """Poll, process, flush, commit, until stop is set; return how many records were processed.

    The batch in hand is always finished and committed before returning. An exception from the
    handler propagates before the commit, so those records are read again after a restart.
    """
    processed = 0
    metrics = committer.metrics
    while not stop.is_set():
        batch = await source.getmany(timeout_ms=poll_timeout_ms, max_records=max_records)
        if not batch:
            continue
        size = sum(len(records) for records in batch.values())
        metrics.consumed.inc(size)
        metrics.batch_size.observe(size)
        for tp, records in batch.items():
            if tp not in committer.assigned():
                continue  # revoked mid-batch: the new owner reads on from the committed offset
            await handler.process(tp, records)
            processed += len(records)
        committer.pending.handled(await handler.flush())
        await committer.commit(committer.pending.take())
    return processed
