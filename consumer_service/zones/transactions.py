"""consume_transactionally: one Kafka transaction per batch, for exactly-once processing.

For each batch: begin a transaction, produce what the transform makes of every record, add the
batch's next offsets (last offset + 1 per partition) to the transaction for the group, commit.
Readers with ``isolation_level=read_committed`` then see the outputs of a batch if and only if
its offsets were committed, so a batch is never seen twice, nor lost.

When a batch fails, its transaction is aborted and the source is sought back to the offsets last
committed, which are the batch's first offsets: every earlier batch was committed, or was sought
back in the same way. They are remembered rather than fetched: the group coordinator shows a
committed transaction's offsets only once its markers are written, and aiokafka cannot ask it for
stable offsets (KIP-447's ``require_stable``), so a fetch just after a commit may return older ones.

Errors:
    FencedError -- another producer with the same transactional id has started: this one must
        stop, and must not abort (its transaction is already aborted by the newcomer).
    AbortFailedError -- a failed transaction could not be aborted (the producer is in a fatal
        state); restart the process: the broker aborts the transaction when the same
        transactional id starts again, or after transaction_timeout_ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import ProducerFenced

from consumer_service.zones.transform import Output
from shared.records import Batch

_log = logging.getLogger(__name__)

# Logged for each committed transaction: other processes (tests) count these lines.
TRANSACTION_COMMITTED = "transaction committed"

Transform = Callable[[ConsumerRecord[Any, Any]], Sequence[Output]]


class FencedError(Exception):
    """A newer producer with the same transactional id took over; this instance must stop."""


class AbortFailedError(Exception):
    """A failed transaction could not be aborted; the process must restart."""


class SeekableSource(Protocol):
    """The part of AIOKafkaConsumer the loop uses."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Batch: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


class TransactionalProducer(Protocol):
    """The part of a transactional AIOKafkaProducer the loop uses."""

    async def begin_transaction(self) -> None: ...

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
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


async def consume_transactionally(
    source: SeekableSource,
    producer: TransactionalProducer,
    transform: Transform,
    stop: asyncio.Event,
    *,
    group_id: str,
    poll_timeout_ms: int,
    max_records: int,
    retry_backoff_s: float,
) -> TransactionCounts:
    """Poll and handle batches, each in one transaction, until stop is set.

    The batch in hand is finished (committed, or aborted and sought back) before returning.
    """
    counts = TransactionCounts()
    while not stop.is_set():
        batch = await source.getmany(timeout_ms=poll_timeout_ms, max_records=max_records)
        records = sum(len(partition_records) for partition_records in batch.values())
        if not records:
            continue
        try:
            produced = await _in_one_transaction(producer, batch, transform, group_id)
        except ProducerFenced as error:
            raise FencedError(
                "a newer producer with the same transactional id has started, or the "
                "transaction outlived zones.transaction_timeout_ms"
            ) from error
        except Exception as error:
            await _abort(producer, error)
            for tp, partition_records in batch.items():
                if partition_records:
                    source.seek(tp, partition_records[0].offset)
            counts.aborted += 1
            _log.warning(
                "transaction aborted; its batch will be read again",
                extra={"records": records, "error": repr(error), "retry_in_s": retry_backoff_s},
            )
            await _pause(stop, retry_backoff_s)
            continue
        counts.committed += 1
        counts.records += records
        counts.produced += produced
        _log.info(TRANSACTION_COMMITTED, extra={"records": records, "produced": produced})
    return counts


def next_offsets(batch: Batch) -> dict[TopicPartition, int]:
    """The offsets to commit for a batch: its last offset + 1, per partition."""
    return {tp: records[-1].offset + 1 for tp, records in batch.items() if records}


async def _in_one_transaction(
    producer: TransactionalProducer, batch: Batch, transform: Transform, group_id: str
) -> int:
    """Begin, produce the batch's outputs, add its offsets, commit; return the output count."""
    await producer.begin_transaction()
    deliveries = []
    for records in batch.values():
        for record in records:
            for output in transform(record):
                deliveries.append(
                    await producer.send(
                        output.topic, output.value, output.key, headers=output.headers
                    )
                )
    # Acknowledged before the offsets go in, so a failed send aborts rather than commits.
    await asyncio.gather(*deliveries)
    await producer.send_offsets_to_transaction(next_offsets(batch), group_id)
    await producer.commit_transaction()
    return len(deliveries)


async def _abort(producer: TransactionalProducer, error: Exception) -> None:
    try:
        await producer.abort_transaction()
    except Exception as abort_error:
        raise AbortFailedError(
            f"the transaction failed ({error!r}) and could not be aborted ({abort_error!r})"
        ) from error


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if stop is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
