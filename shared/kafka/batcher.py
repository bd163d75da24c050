"""RecordBatcher: records gathered into one record batch per partition, sent with send_batch.

The producer service appends the records of concurrent requests; the zone processor appends a
transaction's zone events and waits for them all (`acknowledged`) before it commits.

aiokafka's `send()` costs a coroutine, a future, a size estimate and a pure-Python murmur2 per
record. Here a record is appended to the open `BatchBuilder` of its partition (a C call), and
each partition hands its batches to the client one at a time with `send_batch()`:

- a partition with nothing in flight hands its batch over at once, so a lone request waits for
  no linger;
- while a partition's batch awaits its acknowledgement, new records fill the next batch, so
  batches grow with the load. aiokafka sends one produce request per broker at a time, with
  every ready partition of that broker in it; the gate is per partition, so brokers (leaders)
  never wait for each other. The partitions of one leader are answered by one response, so
  their next batches are handed over in the same loop turn and travel in one request again:
  in effect one round per leader.

A produce request costs the same CPU however few records it carries, so fewer, fuller batches
are what makes a record cheap. Hence no gate per leader handing its partitions over from a task
(a loop turn per round), and no batch handed over while still open (the client's sender would
leave with a few records a batch).

The partition is the Java client's and aiokafka's default partitioner's: murmur2 of the key
(murmurhash2's C implementation, with Kafka's seed), made positive, modulo the partition count. A
batch's acknowledgement carries its base offset; a record's offset is base + its index.

With a delivery timeout, a batch not acknowledged within it of its first record fails its
waiters with DeliveryTimeout; its records stay queued (the idempotent producer still stores them
once). Without one, a batch is only ever answered by the broker or failed by the client: once it
is done it has been handed over, which a transaction needs before it ends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from murmurhash2 import murmurhash2

from shared.kafka.adapter import watch_partition_count

__all__ = [
    "Batch",
    "DeliveryTimeout",
    "RecordBatcher",
    "acknowledged",
    "key_hash",
]

_log = logging.getLogger(__name__)

# org.apache.kafka.common.utils.Utils.murmur2's seed.
_KAFKA_MURMUR2_SEED = 0x9747B28C


class DeliveryTimeout(Exception):
    """The batch was not acknowledged within the delivery timeout."""


def key_hash(key: bytes) -> int:
    """The Java client's positive murmur2 of a key (`Utils.toPositive(Utils.murmur2(key))`)."""
    return murmurhash2(key, _KAFKA_MURMUR2_SEED) & 0x7FFFFFFF


class Batch:
    """One partition's records on their way: appended to, closed and sent, then acknowledged."""

    __slots__ = ("acknowledged", "builder", "bytes", "opened", "partition", "records", "timer")

    def __init__(self, builder: Any, partition: int, future: asyncio.Future[int]) -> None:
        self.builder = builder
        self.timer: asyncio.TimerHandle | None = None
        self.partition = partition
        self.records = 0
        self.bytes = 0
        self.opened = time.perf_counter()
        # The base offset once the broker has acknowledged, or the reason it never will.
        self.acknowledged = future


BatchObserver = Callable[[Batch, float], None]


class RecordBatcher:
    """Append keyed records to per-partition batches of one topic; see the module docstring."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        delivery_timeout_s: float | None,
        on_acknowledged: BatchObserver | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout = delivery_timeout_s
        self._on_acknowledged = on_acknowledged
        self._loop = asyncio.get_running_loop()
        self._queues: dict[int, deque[Batch]] = {}
        self._senders: dict[int, asyncio.Task[None]] = {}
        self._partitions = 0
        self._turns = itertools.count()
        self._unwatch = watch_partition_count(producer, topic, self._partition_count_changed)

    def append(
        self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None
    ) -> tuple[Batch, int]:
        """Add a record to its partition's open batch; return the batch and the record's index
        (`headers`: a list, as aiokafka's C builder takes no other sequence). Records without a
        key go to the partitions in turn."""
        if not self._partitions:
            raise KafkaUnknownTopic(self._topic)
        hashed = key_hash(key) if key is not None else next(self._turns)
        partition = hashed % self._partitions
        queue = self._queues.get(partition)
        if queue is None:
            queue = self._queues[partition] = deque()
        batch = queue[-1] if queue else None
        if (
            batch is None
            or batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is None
        ):
            # No batch, or it is full or closed (handed over): the record starts the next one.
            batch = self._open(queue, partition)
            if batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                size = len(value or b"")
                raise ValueError(f"a record of {size} bytes does not fit in a batch")
        index = batch.records
        batch.records = index + 1
        batch.bytes += (len(key) if key else 0) + (len(value) if value else 0)
        if partition not in self._senders:
            self._senders[partition] = self._loop.create_task(self._send(queue, partition))
        return batch, index

    async def close(self) -> None:
        """Wait until every batch has been handed over and answered (or has failed)."""
        while self._senders:
            await asyncio.gather(*self._senders.values(), return_exceptions=True)
        self._unwatch()

    def _open(self, queue: deque[Batch], partition: int) -> Batch:
        batch = Batch(self._producer.create_batch(), partition, self._loop.create_future())
        if self._timeout is not None:
            batch.timer = self._loop.call_later(
                self._timeout, _expire, batch.acknowledged, self._timeout
            )
        queue.append(batch)
        return batch

    async def _send(self, queue: deque[Batch], partition: int) -> None:
        """Hand this partition's batches over one at a time, each once the previous is answered."""
        try:
            while queue:
                batch = queue[0]
                # Closed, it takes no more records, and the client drains it at once: no linger.
                batch.builder.close()
                try:
                    delivery = await self._producer.send_batch(
                        batch.builder, self._topic, partition=partition
                    )
                    metadata = await delivery
                except (KafkaError, OSError) as error:
                    _fail(batch.acknowledged, error)
                else:
                    if not batch.acknowledged.done():
                        batch.acknowledged.set_result(metadata.offset)
                    if self._on_acknowledged is not None:
                        self._on_acknowledged(batch, time.perf_counter() - batch.opened)
                finally:
                    if batch.timer is not None:
                        batch.timer.cancel()
                queue.popleft()
        except BaseException as error:  # cancelled, or a bug: nobody may wait for ever
            reason = error if isinstance(error, Exception) else RuntimeError("sending stopped")
            for batch in queue:
                _fail(batch.acknowledged, reason)
            queue.clear()
            raise
        finally:
            del self._senders[partition]

    def _partition_count_changed(self, count: int) -> None:
        if count != self._partitions:
            if self._partitions:
                _log.warning(
                    "partition count changed",
                    extra={"topic": self._topic, "before": self._partitions, "now": count},
                )
            self._partitions = count


class KafkaUnknownTopic(KafkaError):  # type: ignore[misc]
    """The client's metadata has no partitions for the topic (yet)."""


async def acknowledged(batches: Collection[Batch]) -> None:
    """Wait until every batch is acknowledged or has failed, then raise the first failure."""
    futures = [batch.acknowledged for batch in batches]
    if futures:
        await asyncio.wait(futures)  # cancelled, it leaves the batches alone
    for future in futures:
        failure = future.exception()
        if failure is not None:
            raise failure


def _expire(future: asyncio.Future[int], timeout: float) -> None:
    _fail(future, DeliveryTimeout(f"not acknowledged within {timeout:g} s"))


def _fail(future: asyncio.Future[int], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
        future.exception()  # retrieved: waiters may be gone already, which is no bug
