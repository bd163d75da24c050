"""commit_partition: one Kafka transaction for one partition's records, for exactly-once processing.

The transaction holds what the transform makes of every record and the partition's next offset
(last offset + 1) for the group, so readers with ``isolation_level=read_committed`` see a batch's
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
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition

from zones_service.transform import Output

_log = logging.getLogger(__name__)

# Logged for each committed transaction: other processes (tests) count these lines.
TRANSACTION_COMMITTED = "transaction committed"

Headers = list[tuple[str, bytes]]
Transform = Callable[[ConsumerRecord[Any, Any]], Sequence[Output]]


def transactional_id(group_id: str, partition: TopicPartition) -> str:
    """The partition's transactional id: the same in every instance and across restarts."""
    return f"{group_id}-{partition.topic}-{partition.partition}"


class FencedError(Exception):
    """Another instance owns the partition now; this one must stop processing it."""


class AbortFailedError(Exception):
    """A failed transaction could not be aborted; the process must restart."""


class TransactionalProducer(Protocol):
    """The part of a transactional AIOKafkaProducer the loop uses."""

    async def begin_transaction(self) -> None: ...

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None, *, headers: Headers
    ) -> asyncio.Future[Any]: ...

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


async def commit_partition(
    producer: TransactionalProducer,
    partition: TopicPartition,
    records: Sequence[ConsumerRecord[Any, Any]],
    transform: Transform,
    group_id: str,
) -> int:
    """Begin, produce the records' outputs, add the partition's next offset, commit; return the
    number of records produced."""
    await producer.begin_transaction()
    deliveries = [
        await producer.send(output.topic, output.value, output.key, headers=output.headers)
        for record in records
        for output in transform(record)
    ]
    # Acknowledged before the offset goes in, so a failed send aborts rather than commits.
    # Every outcome is collected (no failed delivery left unretrieved), the first failure raised.
    for outcome in await asyncio.gather(*deliveries, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome
    await producer.send_offsets_to_transaction({partition: records[-1].offset + 1}, group_id)
    await producer.commit_transaction()
    return len(deliveries)


async def abort(producer: TransactionalProducer, error: Exception) -> None:
    """Abort the open transaction that failed with `error`; AbortFailedError if that fails too."""
    try:
        await producer.abort_transaction()
    except Exception as abort_error:
        raise AbortFailedError(
            f"the transaction failed ({error!r}) and could not be aborted ({abort_error!r})"
        ) from error
