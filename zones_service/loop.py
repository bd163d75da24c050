"""process_zones: the zone processor's poll loop, exactly once.

Each batch is handled partition by partition, each partition's records in one transaction of
that partition's producer (PartitionProducers); the partitions of a batch are committed
concurrently.

Once stop is set the batch in hand has FINISH_SHARE of zones.shutdown_timeout_s to commit (the
rest is for closing the clients). A transaction unfinished by then, waiting on a node that does
not answer, is cancelled and left open: nothing of it is visible to read_committed readers and its
offset is not committed, so the partition's next owner (its producer has the same transactional
id, which aborts it) or the broker after zones.transaction_timeout_ms aborts it.

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
from collections.abc import Coroutine, Sequence
from typing import Any, NamedTuple

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import ProducerFenced

from shared.kafka.records import RecordSource, SchemaIds
from shared.runtime.settings import Settings
from shared.runtime.tasks import finished_within
from zones_service.metrics import ZoneMetrics
from zones_service.partitions import PartitionProducers
from zones_service.transactions import (
    FencedError,
    TransactionCounts,
    Transform,
    abort,
    commit_partition,
)
from zones_service.transform import Output

_log = logging.getLogger(__name__)

# Once stop is set, the share of zones.shutdown_timeout_s the batch in hand has to commit; the rest
# is for closing the producers and the consumer (service.CLOSE_SHARE each) and a margin.
FINISH_SHARE = 0.5


class Outcome(NamedTuple):
    """A partition's batch: its records, and once committed what it produced (None once aborted),
    the copies dropped and the dead letters among it (0 once aborted: all are read again)."""

    records: int
    produced: int | None
    dropped: int = 0
    dead_letters: int = 0


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
    """Poll and handle batches until stop is set; the batch in hand is finished first, within
    FINISH_SHARE of zones.shutdown_timeout_s.

    With `schema_ids` (the transform's), the new schema ids of each batch are looked up first
    (the transform dead-letters the unknown), the batch waiting while the registry is unreachable.
    """
    counts = TransactionCounts()
    zones = settings.zones
    group_id, backoff_s = zones.group_id, zones.retry_backoff_ms / 1000
    dead_letter_topic = settings.kafka.dead_letter_topic
    finish_s = zones.shutdown_timeout_s * FINISH_SHARE
    while not stop.is_set():
        batch = await consumer.getmany(
            timeout_ms=zones.poll_timeout_ms, max_records=zones.max_poll_records
        )
        if owner.failure is not None:
            raise owner.failure
        if schema_ids is not None:
            await schema_ids.check([record for records in batch.values() for record in records])
        async with owner.lock:
            handling = {
                tp: _handle(owner, tp, records, transform, group_id, dead_letter_topic)
                for tp, records in batch.items()
                if records and _current(owner, tp, records[0].offset)
            }
            results = await _handle_all(handling, stop, finish_s)
        for outcome in results:
            if outcome.produced is None:
                counts.aborted += 1
            else:
                counts.committed += 1
                counts.records += outcome.records
                counts.produced += outcome.produced
                counts.dropped += outcome.dropped
            if metrics is not None:
                _count(metrics, outcome)
        if any(outcome.produced is None for outcome in results):
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


async def _handle_all(
    handling: dict[TopicPartition, Coroutine[Any, Any, Outcome]],
    stop: asyncio.Event,
    finish_s: float,
) -> list[Outcome]:
    """The outcomes of the partitions' transactions, run concurrently. Once stop is set they have
    finish_s more; then those unfinished are cancelled, left open, and have no outcome."""
    tasks = {tp: asyncio.ensure_future(coroutine) for tp, coroutine in handling.items()}
    gathered = asyncio.gather(*tasks.values())
    try:
        if await finished_within(gathered, stop, finish_s):
            return gathered.result()
    finally:
        if not gathered.done():  # past the deadline, or this task cancelled
            gathered.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gathered
    left_open = sorted(tp.partition for tp, task in tasks.items() if task.cancelled())
    _log.warning(
        "transactions left open at shutdown",
        extra={
            "partitions": left_open,
            "reason": f"not committed within {finish_s:g} s of the stop (zones.shutdown_timeout_s"
            " times loop.FINISH_SHARE); the partitions' next owner aborts them",
        },
    )
    return [task.result() for task in tasks.values() if not task.cancelled()]


async def _handle(
    owner: PartitionProducers,
    tp: TopicPartition,
    records: Sequence[ConsumerRecord[Any, Any]],
    transform: Transform,
    group_id: str,
    dead_letter_topic: str,
) -> Outcome:
    """The outcome once committed, or with produced None once aborted and sought back.
    Cancelled (at the shutdown deadline), the transaction is left open as it is."""
    producer = owner.producers[tp]
    duplicates = owner.duplicates
    copies = 0
    if duplicates is not None:
        originals = duplicates.originals(tp, records)
        copies = len(records) - len(originals)
        if copies:
            transform = _skipping_copies(transform, {record.offset for record in originals})
    letters = _DeadLetters(transform, dead_letter_topic)
    try:
        produced = await commit_partition(producer, tp, records, letters, group_id)
    except ProducerFenced as error:
        raise FencedError(
            f"partition {tp.partition} of {tp.topic} belongs to another instance now (this one "
            "stalled past zones.session_timeout_ms, or a transaction outlived "
            "zones.transaction_timeout_ms)"
        ) from error
    except Exception as error:
        await abort(producer, error)
        owner.seek(tp, records[0].offset)
        if duplicates is not None:  # its records will be seen again, its copies dropped again
            await duplicates.restore({tp: records[0].offset})
        _log.warning(
            "transaction aborted; its records will be read again",
            extra={"partition": tp.partition, "records": len(records), "error": repr(error)},
        )
        return Outcome(len(records), None)
    owner.offsets[tp] = records[-1].offset + 1
    _log.info(
        "transaction committed",
        extra={"partition": tp.partition, "records": len(records), "produced": produced},
    )
    return Outcome(len(records), produced, copies, letters.count)


class _DeadLetters:
    """The transform, counting the dead letters among what it makes."""

    def __init__(self, transform: Transform, topic: str) -> None:
        self._transform = transform
        self._topic = topic
        self.count = 0

    def __call__(self, record: ConsumerRecord[Any, Any]) -> Output:
        output = self._transform(record)
        if output.topic == self._topic:
            self.count += len(output.records)
        return output


_NOTHING = Output("", (), [])


def _skipping_copies(transform: Transform, originals: set[int]) -> Transform:
    """The transform, giving nothing for the records not at one of the `originals` offsets: the
    copies' offsets are committed with the rest, their zone events never produced."""

    def skipping(record: ConsumerRecord[Any, Any]) -> Output:
        return transform(record) if record.offset in originals else _NOTHING

    return skipping


def _count(metrics: ZoneMetrics, outcome: Outcome) -> None:
    if outcome.produced is None:
        metrics.aborted.inc()
        return
    metrics.committed.inc()
    metrics.records.inc(outcome.records)
    metrics.produced.inc(outcome.produced)
    metrics.duplicates.inc(outcome.dropped)
    metrics.dead_lettered.inc(outcome.dead_letters)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if stop is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
