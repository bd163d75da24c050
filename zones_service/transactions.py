"""commit_partition: one Kafka transaction for one partition's records, for exactly-once processing.

The transaction holds what the transform makes of every record and the partition's next offset
(last offset + 1) for the group, both sent at once and committed once every record is
acknowledged, so readers with ``isolation_level=read_committed`` see a batch's
zone events if and only if its offset was committed: never twice, never lost.

Each input partition has a transactional producer of its own, its transactional id derived from
the group, the topic and the partition (transactional_id). Whoever owns the partition next starts
a producer with the same id, which fences this one: its next transactional request fails with
ProducerFenced, so a zombie can neither commit output nor offsets (the pattern Kafka Streams used
before KIP-447, which aiokafka does not support).

Errors:
    FencedError -- another instance owns the partition now (this one stalled past the group's
        session timeout, or a transaction outlived zones.transaction_timeout_ms): stop.
    AbortFailedError -- a failed transaction could not be aborted (the producer is in a fatal
        state); restart: the partition's next owner aborts it when it starts its producer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.kafka.adapter import retrieve_transaction_errors
from shared.kafka.batcher import Batch, RecordBatcher, acknowledged
from zones_service.transform import Output

Headers = list[tuple[str, bytes]]
Transform = Callable[[ConsumerRecord[Any, Any]], Output]


def transactional_id(group_id: str, partition: TopicPartition) -> str:
    """The partition's transactional id: the same in every instance and across restarts."""
    return f"{group_id}-{partition.topic}-{partition.partition}"


class FencedError(Exception):
    """Another instance owns the partition now; this one must stop processing it."""


class AbortFailedError(Exception):
    """A failed transaction could not be aborted; the process must restart."""


class TransactionalProducer(Protocol):
    """What the loop needs of a partition's producer (BatchingProducer)."""

    async def begin_transaction(self) -> None: ...

    def append(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> tuple[Batch, int]: ...

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None: ...

    async def commit_transaction(self) -> None: ...

    async def abort_transaction(self) -> None: ...


@dataclass
class TransactionCounts:
    """What the loop has done since it started."""

    committed: int = 0
    aborted: int = 0
    records: int = 0
    produced: int = 0
    # Copies of events already handled (shared.kafka.dedupe), dropped in committed transactions.
    dropped: int = 0


async def commit_partition(
    producer: TransactionalProducer,
    partition: TopicPartition,
    records: Sequence[ConsumerRecord[Any, Any]],
    transform: Transform,
    group_id: str,
) -> int:
    """Begin, produce the records' outputs, add the partition's next offset, commit; return the
    number of records produced."""
    outputs = [transform(record) for record in records]
    await producer.begin_transaction()
    batches: dict[Batch, None] = {}
    produced = 0
    try:
        for topic, produce, headers in outputs:
            for key, value in produce:
                batch, _ = producer.append(topic, key, value, headers)
                batches[batch] = None
            produced += len(produce)
    except Exception:
        # What was appended is answered first, so that none of it goes out in the next transaction.
        with contextlib.suppress(Exception):
            await acknowledged(batches)
        raise
    # The offset goes into the transaction while its batches are under way (one round trip less):
    # it takes effect only with the commit, and the commit waits for every acknowledgement, so a
    # failed batch aborts the offset with it.
    offsets = {partition: records[-1].offset + 1}
    outcomes = await asyncio.gather(
        acknowledged(batches),
        producer.send_offsets_to_transaction(offsets, group_id),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    await producer.commit_transaction()
    return produced


async def abort(producer: TransactionalProducer, error: Exception) -> None:
    """Abort the open transaction that failed with `error`; AbortFailedError if that fails too."""
    try:
        await producer.abort_transaction()
    except Exception as abort_error:
        raise AbortFailedError(
            f"the transaction failed ({error!r}) and could not be aborted ({abort_error!r})"
        ) from error


class BatchingProducer:
    """A partition's producer: its records appended to one batch per output partition
    (shared.kafka.batcher), its transactions those of the AIOKafkaProducer it wraps."""

    def __init__(self, producer: AIOKafkaProducer, topics: Sequence[str]) -> None:
        self._producer = producer
        self._topics = topics
        self._batchers: dict[str, RecordBatcher] = {}
        self.begin_transaction = producer.begin_transaction
        self.send_offsets_to_transaction = producer.send_offsets_to_transaction
        self.commit_transaction = producer.commit_transaction
        self.abort_transaction = producer.abort_transaction

    async def start(self) -> None:
        """Start the producer and learn each output topic's partitions."""
        await self._producer.start()
        for topic in self._topics:
            await self._producer.partitions_for(topic)
            # No delivery timeout: a transaction's batches are all answered before it ends.
            self._batchers[topic] = RecordBatcher(self._producer, topic, delivery_timeout_s=None)

    def append(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> tuple[Batch, int]:
        """Add a record to the open batch of its partition of `topic` (one named at start)."""
        return self._batchers[topic].append(key, value, headers)

    async def stop(self) -> None:
        """Stop the producer (pending batches are sent or failed), then the batchers."""
        # No error of a cancelled transaction step is left unretrieved (see the adapter).
        retrieve_transaction_errors(self._producer)
        await self._producer.stop()
        for batcher in self._batchers.values():
            await batcher.close()
