"""The zone loop against a fake source and fake per-partition transactional producers: one
transaction per partition, aborted and re-read on failure, fenced to a stop, and producers that
follow the assignment."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaTimeoutError, ProducerFenced

from shared.kafka.batcher import Batch
from shared.runtime.settings import Settings
from tests.support.settings import with_changes
from zones_service.loop import process_zones
from zones_service.metrics import ZoneMetrics
from zones_service.partitions import PartitionProducers
from zones_service.transactions import AbortFailedError, FencedError, TransactionCounts
from zones_service.transform import Output

TOPIC, GROUP = "in", "zones"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def _record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    value = f"{partition}:{offset}".encode()
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, b"k", value, None, 1, len(value), [])


def _echo(record: ConsumerRecord[Any, Any]) -> Output:
    return Output("out", [(record.key, record.value)], [])


class FakeSource:
    """Partitions of records read from a position that seek moves; sets stop when drained."""

    def __init__(self, logs: Mapping[TopicPartition, int], stop: asyncio.Event) -> None:
        self.logs = {tp: [_record(tp.partition, o) for o in range(n)] for tp, n in logs.items()}
        self.positions = dict.fromkeys(logs, 0)
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.committed_offsets: dict[TopicPartition, int] = {}
        self._stop = stop
        self.during_fetch: list[object] = []  # awaited after the next batch is taken

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        batch = {}
        for tp, log in self.logs.items():
            taken = log[self.positions[tp] : self.positions[tp] + (max_records or len(log))]
            if taken:
                batch[tp] = taken
                self.positions[tp] += len(taken)
        if not batch:
            self._stop.set()
        while self.during_fetch:
            await self.during_fetch.pop(0)  # type: ignore[misc]
        return batch

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))
        self.positions[partition] = offset

    async def committed(self, partition: TopicPartition) -> int | None:
        return self.committed_offsets.get(partition)

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.logs[tp]) for tp in partitions}


class FakeTransactionalProducer:
    """Keeps what committed transactions produced and the offsets they carried."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.committed: list[bytes | None] = []
        self.committed_offsets: dict[TopicPartition, int] = {}
        self.fail_batches: list[Exception] = []
        self.fail_offsets: list[Exception] = []
        self.fail_commit: list[Exception] = []
        self.fail_abort: list[Exception] = []
        self._open: list[bytes | None] = []
        self._open_offsets: dict[TopicPartition, int] = {}
        self.stopped = False

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    def append(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any
    ) -> tuple[Batch, int]:
        """TransactionalProducer.append: keeps the value; the key and headers do not matter here.
        Its batch is answered at once: acknowledged, or failed with the next of fail_batches."""
        self.calls.append("append")
        self._open.append(value)
        answered: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.fail_batches:
            answered.set_exception(self.fail_batches.pop(0))
        else:
            answered.set_result(len(self._open) - 1)
        return Batch(None, 0, answered), 0

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None:
        assert group_id == GROUP
        self.calls.append("offsets")
        if self.fail_offsets:
            raise self.fail_offsets.pop(0)
        self._open_offsets = dict(offsets)

    async def commit_transaction(self) -> None:
        self.calls.append("commit")
        if self.fail_commit:
            raise self.fail_commit.pop(0)
        self.committed += self._open
        self.committed_offsets |= self._open_offsets
        self._open, self._open_offsets = [], {}

    async def abort_transaction(self) -> None:
        self.calls.append("abort")
        if self.fail_abort:
            raise self.fail_abort.pop(0)
        self._open, self._open_offsets = [], {}

    async def stop(self) -> None:
        self.stopped = True


class Producers:
    """Starts a fake producer per partition, as the group assigns them."""

    def __init__(self) -> None:
        self.started: dict[TopicPartition, FakeTransactionalProducer] = {}
        self.fail_next: dict[TopicPartition, FakeTransactionalProducer] = {}

    async def __call__(self, tp: TopicPartition) -> FakeTransactionalProducer:
        self.started[tp] = self.fail_next.pop(tp, None) or FakeTransactionalProducer()
        return self.started[tp]


async def _owning(
    source: FakeSource, *partitions: TopicPartition
) -> tuple[PartitionProducers, Producers]:
    producers = Producers()
    owner = PartitionProducers(source, producers)
    await owner.on_partitions_assigned(list(partitions))
    return owner, producers


async def _run(
    source: FakeSource,
    owner: PartitionProducers,
    settings: Settings,
    transform: Callable[[ConsumerRecord[Any, Any]], Output] = _echo,
    metrics: ZoneMetrics | None = None,
) -> TransactionCounts:
    settings = with_changes(
        settings,
        zones={
            "group_id": GROUP,
            "retry_backoff_ms": 0,
            "max_poll_records": 2,
            "poll_timeout_ms": 1,
        },
    )
    return await process_zones(
        source, owner, transform, source._stop, settings=settings, metrics=metrics
    )


def _values(source: FakeSource, tp: TopicPartition) -> Sequence[bytes | None]:
    return [record.value for record in source.logs[tp]]


async def test_each_partition_is_one_transaction_of_its_own_producer_with_its_next_offset(
    settings: Settings,
) -> None:
    source = FakeSource({P0: 2, P1: 1}, asyncio.Event())
    owner, producers = await _owning(source, P0, P1)
    counts = await _run(source, owner, settings)
    p0, p1 = producers.started[P0], producers.started[P1]
    assert p0.calls == ["begin", "append", "append", "offsets", "commit"]
    assert p1.calls == ["begin", "append", "offsets", "commit"]
    assert (p0.committed_offsets, p1.committed_offsets) == ({P0: 2}, {P1: 1})
    assert (p0.committed, p1.committed) == (_values(source, P0), _values(source, P1))
    assert (counts.committed, counts.records, counts.produced) == (2, 3, 3)


async def test_a_failed_transaction_is_aborted_and_its_partition_read_again_from_committed(
    settings: Settings,
) -> None:
    source = FakeSource({P0: 6, P1: 2}, asyncio.Event())
    owner, producers = await _owning(source, P0, P1)
    producers.started[P0].fail_offsets = [RuntimeError("injected after producing")]
    counts = await _run(source, owner, settings)
    p0, p1 = producers.started[P0], producers.started[P1]
    assert p0.calls[:6] == ["begin", "append", "append", "offsets", "abort", "begin"]
    assert source.seeks[2:] == [(P0, 0)]  # after the two of the assignment
    assert p0.committed == _values(source, P0)  # each exactly once
    assert p1.committed == _values(source, P1)  # the other partition was not held back
    assert (p0.committed_offsets, counts.aborted, counts.committed) == ({P0: 6}, 1, 4)


async def test_a_batch_that_fails_aborts_its_transaction_before_the_offset_goes_in(
    settings: Settings,
) -> None:
    source = FakeSource({P0: 4}, asyncio.Event())
    owner, producers = await _owning(source, P0)
    producers.started[P0].fail_batches = [KafkaTimeoutError()]
    counts = await _run(source, owner, settings)
    p0 = producers.started[P0]
    assert p0.calls[:7] == ["begin", "append", "append", "offsets", "abort", "begin", "append"]
    assert p0.committed == _values(source, P0)  # re-read, then each exactly once
    assert (p0.committed_offsets, counts.aborted) == ({P0: 4}, 1)


async def test_a_fenced_producer_stops_the_loop_without_aborting(settings: Settings) -> None:
    source = FakeSource({P0: 4}, asyncio.Event())
    owner, producers = await _owning(source, P0)
    producers.started[P0].fail_commit = [ProducerFenced()]
    with pytest.raises(FencedError, match="belongs to another instance"):
        await _run(source, owner, settings)
    assert "abort" not in producers.started[P0].calls
    assert producers.started[P0].committed == []


async def test_a_transaction_that_cannot_be_aborted_stops_the_loop(settings: Settings) -> None:
    source = FakeSource({P0: 4}, asyncio.Event())
    owner, producers = await _owning(source, P0)
    producers.started[P0].fail_commit = [RuntimeError("commit failed")]
    producers.started[P0].fail_abort = [AssertionError("Invalid state transition")]
    with pytest.raises(AbortFailedError, match="commit failed"):
        await _run(source, owner, settings)
    assert source.seeks == [(P0, 0)]  # the assignment's only


async def test_an_assignment_starts_producers_then_seeks_to_the_committed_offsets() -> None:
    source = FakeSource({P0: 9, P1: 9}, asyncio.Event())
    source.committed_offsets = {P0: 5}
    owner, producers = await _owning(source, P0, P1)
    assert set(producers.started) == {P0, P1}
    # P1 has no committed offset: zones.auto_offset_reset (earliest) says where it starts.
    assert source.seeks == [(P0, 5), (P1, 0)]
    assert owner.offsets == {P0: 5, P1: 0}
    await owner.on_partitions_revoked([P0])
    assert producers.started[P0].stopped and not producers.started[P1].stopped
    assert set(owner.producers) == {P1}


async def test_a_batch_fetched_before_a_reassignment_is_dropped_and_read_from_the_new_offset(
    settings: Settings,
) -> None:
    source = FakeSource({P0: 3}, asyncio.Event())
    owner, producers = await _owning(source, P0)
    first = producers.started[P0]

    async def handled_elsewhere() -> None:
        source.committed_offsets[P0] = 1  # another instance owned P0 meanwhile, and did record 0

    # While the first batch (records 0-1) is fetched, the group takes P0 away and gives it back.
    source.during_fetch = [
        owner.on_partitions_revoked([P0]),
        handled_elsewhere(),
        owner.on_partitions_assigned([P0]),
    ]
    counts = await _run(source, owner, settings)
    assert first.stopped and first.calls == []
    assert producers.started[P0].committed == _values(source, P0)[1:]  # record 0 not again
    assert producers.started[P0].committed_offsets == {P0: 3}
    assert counts.records == 2


class _StuckCommit(FakeTransactionalProducer):
    """A commit that waits on a node that never answers; SIGTERM arrives meanwhile."""

    def __init__(self, stop: asyncio.Event) -> None:
        super().__init__()
        self._stop = stop

    async def commit_transaction(self) -> None:
        self.calls.append("commit")
        self._stop.set()
        await asyncio.Event().wait()


async def test_at_shutdown_a_transaction_unfinished_in_time_is_left_open_and_the_rest_commit(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    source = FakeSource({P0: 2, P1: 2}, stop)
    producers = Producers()
    producers.fail_next[P1] = _StuckCommit(stop)
    owner = PartitionProducers(source, producers)
    await owner.on_partitions_assigned([P0, P1])
    settings = with_changes(settings, zones={"shutdown_timeout_s": 0.2})
    async with asyncio.timeout(5):
        counts = await _run(source, owner, settings)
    p0, p1 = producers.started[P0], producers.started[P1]
    assert p0.committed_offsets == {P0: 2}
    # Left open: neither committed nor aborted, nor its partition sought back.
    assert p1.calls == ["begin", "append", "append", "offsets", "commit"]
    assert (p1.committed, p1.committed_offsets) == ([], {})
    assert source.seeks == [(P0, 0), (P1, 0)]  # the assignment's only
    assert (counts.committed, counts.aborted, counts.records) == (1, 0, 2)
    # The warning docs/zones.md promises an operator names the partitions left open.
    [left_open] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (left_open.name, left_open.partitions) == ("zones_service.loop", [1])  # type: ignore[attr-defined]


class _HeldSource(FakeSource):
    """A FakeSource whose committed offsets are answered only once `answer` is set."""

    def __init__(self, logs: Mapping[TopicPartition, int], stop: asyncio.Event) -> None:
        super().__init__(logs, stop)
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def committed(self, partition: TopicPartition) -> int | None:
        self.asked.set()
        await self.answer.wait()
        return await super().committed(partition)


async def test_an_assignment_is_owned_and_ready_only_once_it_is_taken_over() -> None:
    source = _HeldSource({P0: 1, P1: 1}, asyncio.Event())
    owner = PartitionProducers(source, Producers())
    taking = asyncio.create_task(owner.on_partitions_assigned([P0, P1]))
    await source.asked.wait()  # the producers are started; the offsets not yet restored
    assert (owner.assigned, owner.owned, sorted(owner.producers)) == (False, set(), [P0, P1])
    source.answer.set()
    await taking
    assert (owner.assigned, owner.owned) == (True, {P0, P1})
    await owner.on_partitions_revoked([P1])
    assert owner.owned == {P0}


async def test_dead_letters_are_counted_once_their_transaction_commits(settings: Settings) -> None:
    dead_letter_topic = settings.kafka.dead_letter_topic

    def odd_ones_dead(record: ConsumerRecord[Any, Any]) -> Output:
        topic = dead_letter_topic if record.offset % 2 else "out"
        return Output(topic, [(record.key, record.value)], [])

    source = FakeSource({P0: 4}, asyncio.Event())
    owner, producers = await _owning(source, P0)
    producers.started[P0].fail_offsets = [RuntimeError("injected after producing")]
    metrics = ZoneMetrics(lambda: {})
    await _run(source, owner, settings, odd_ones_dead, metrics)

    # Offsets 1 and 3; the first transaction's dead letter once, though it was made twice.
    assert metrics.registry.get_sample_value("biometrics_records_dead_lettered_total") == 2
    assert metrics.registry.get_sample_value("biometrics_zone_transactions_aborted_total") == 1
