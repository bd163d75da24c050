"""PartitionProducers: a transactional producer for each input partition the group assigns here.

When the group assigns a partition, its producer is started, which fences the producer of any
earlier owner (a crashed instance, or a zombie that stalled past the session timeout) and ends
that one's open transaction. Only then are the partition's committed offsets fetched and sought
to, so they include everything the earlier owner committed. When a partition is revoked, the
batch in hand is committed or aborted first (the loop holds `lock` while it handles a batch),
then its producer is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition

from shared.kafka.dedupe import Duplicates
from zones_service.transactions import TransactionalProducer

_log = logging.getLogger(__name__)


class ClosableProducer(TransactionalProducer, Protocol):
    """A TransactionalProducer that can be stopped."""

    async def stop(self) -> None: ...


class Positions(Protocol):
    """The part of AIOKafkaConsumer that moves positions."""

    async def committed(self, partition: TopicPartition) -> int | None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...


ProducerFactory = Callable[[TopicPartition], Awaitable[ClosableProducer]]


class PartitionProducers(ConsumerRebalanceListener):  # type: ignore[misc]
    """The producers of the partitions this instance owns, kept in step with the group."""

    def __init__(
        self,
        positions: Positions,
        start_producer: ProducerFactory,
        *,
        earliest: bool = True,
        duplicates: Duplicates | None = None,
    ) -> None:
        self._positions = positions
        # The keys of each owned partition's recent records, rebuilt from the log on assignment
        # and after an abort (shared.kafka.dedupe); None when dedupe is off.
        self.duplicates = duplicates
        self._start_producer = start_producer
        self._earliest = earliest  # where a partition without a committed offset starts
        self.producers: dict[TopicPartition, ClosableProducer] = {}
        # The next offset to process of each owned partition: the committed one. A fetched batch
        # that starts before it was fetched before a reassignment, and is dropped.
        self.offsets: dict[TopicPartition, int] = {}
        # The partitions taken over: producer started, offset and memory of keys restored.
        self.owned: set[TopicPartition] = set()
        # Held by the loop while it handles a batch, and here while the assignment changes.
        self.lock = asyncio.Lock()
        # Whether this instance has taken over an assignment (possibly empty) of the group yet:
        # its producers started, its offsets and its memory of keys restored.
        self.assigned = False
        # Raised by the loop: a listener's own exceptions are only logged by aiokafka.
        self.failure: BaseException | None = None

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        async with self.lock:
            await self._close([tp for tp in revoked if tp in self.producers])

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        async with self.lock:
            try:
                await self._take(sorted(assigned))
            except Exception as error:
                self.failure = error
                raise
            self.assigned = True
            _log.info(
                "partitions assigned",
                extra={"partitions": sorted(tp.partition for tp in self.producers)},
            )

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read the partition again from `offset`: a failed batch's first, or the committed one."""
        self._positions.seek(partition, offset)

    async def close_all(self) -> None:
        """Close every producer (at shutdown, once the loop has finished its batch)."""
        async with self.lock:
            await self._close(list(self.producers))

    async def _take(self, partitions: list[TopicPartition]) -> None:
        new = [tp for tp in partitions if tp not in self.producers]
        started = await asyncio.gather(*(self._start_producer(tp) for tp in new))
        self.producers.update(zip(new, started, strict=True))
        # Fenced: the earlier owners' last transactions are complete, so are these offsets.
        committed = {tp: await self._positions.committed(tp) for tp in partitions}
        fresh = [tp for tp, offset in committed.items() if offset is None]
        if fresh:
            start = (
                self._positions.beginning_offsets if self._earliest else self._positions.end_offsets
            )
            committed |= await start(fresh)
        for tp, offset in committed.items():
            assert offset is not None
            self._positions.seek(tp, offset)
            self.offsets[tp] = offset
        if self.duplicates is not None:
            await self.duplicates.restore({tp: self.offsets[tp] for tp in committed})
        self.owned.update(partitions)

    async def _close(self, partitions: list[TopicPartition]) -> None:
        producers = [self.producers.pop(tp) for tp in partitions]
        self.owned.difference_update(partitions)
        for tp in partitions:
            self.offsets.pop(tp, None)
        if self.duplicates is not None:
            self.duplicates.forget(partitions)
        stopped = await asyncio.gather(
            *(producer.stop() for producer in producers), return_exceptions=True
        )
        for tp, outcome in zip(partitions, stopped, strict=True):
            if isinstance(outcome, Exception):
                _log.warning(
                    "a partition's producer failed to close",
                    extra={"partition": tp.partition, "error": repr(outcome)},
                )
