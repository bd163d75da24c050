from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from consumer_service import Committer, ConsumerMetrics, PendingOffsets, RebalanceHandler, consume
from tests.support.samples import P0, P1, TOPIC, record


class FakeSource:
    """Hands out prepared batches, then sets stop; records every commit."""

    def __init__(self, batches: Sequence[Mapping[TopicPartition, list[Any]]], stop: asyncio.Event):
        self._batches = list(batches)
        self._stop = stop
        self.assigned: set[TopicPartition] = {P0, P1}
        self.commits: list[dict[TopicPartition, int]] = []
        self.failing_commits = 0

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, list[Any]]:
        if not self._batches:
            self._stop.set()
            return {}
        return self._batches.pop(0)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.failing_commits:
            self.failing_commits -= 1
            raise CommitFailedError("rebalanced")
        self.commits.append(dict(offsets))

    def assignment(self) -> Collection[TopicPartition]:
        return self.assigned

    def highwater(self, partition: TopicPartition) -> int | None:
        return 100


class RecordingHandler:
    """Processes by remembering; flush() marks what was processed as flushed, and returns each
    partition's next offset, as RecordProcessor does."""

    def __init__(self, fail_at: int | None = None, on_process: Any = None) -> None:
        self.processed: list[tuple[int, int]] = []
        self.flushed: list[tuple[int, int]] = []
        self.fail_at = fail_at
        self.on_process = on_process
        self._offsets: dict[TopicPartition, int] = {}

    async def process(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        if any(r.offset == self.fail_at for r in records):
            raise RuntimeError("dead-letter topic unreachable")
        if self.on_process:
            self.on_process(tp)
        self.processed += [(r.partition, r.offset) for r in records]
        self._offsets[tp] = records[-1].offset + 1

    async def flush(self) -> dict[TopicPartition, int]:
        self.flushed = list(self.processed)
        offsets, self._offsets = self._offsets, {}
        return offsets


async def _run(source: FakeSource, stop: asyncio.Event, handler: RecordingHandler) -> Committer:
    committer = Committer(source, PendingOffsets(), ConsumerMetrics())
    await consume(source, handler, stop, committer, poll_timeout_ms=10, max_records=10)
    return committer


async def test_offsets_are_committed_as_last_offset_plus_one_per_partition() -> None:
    stop = asyncio.Event()
    source = FakeSource([{P0: [record(0, 5), record(0, 6)], P1: [record(1, 9)]}], stop)
    handler = RecordingHandler()
    await _run(source, stop, handler)
    assert handler.flushed == [(0, 5), (0, 6), (1, 9)]
    assert source.commits == [{P0: 7, P1: 10}]


async def test_a_handler_failure_leaves_its_whole_batch_uncommitted() -> None:
    stop = asyncio.Event()
    batches = [{P0: [record(0, 0)]}, {P1: [record(1, 0)], P0: [record(0, 1), record(0, 2)]}]
    source = FakeSource(batches, stop)
    with pytest.raises(RuntimeError, match="dead-letter topic unreachable"):
        await _run(source, stop, RecordingHandler(fail_at=1))
    assert source.commits == [{P0: 1}]


async def test_the_batch_in_hand_is_finished_and_committed_after_stop() -> None:
    stop = asyncio.Event()
    source = FakeSource([{P0: [record(0, 0), record(0, 1)], P1: [record(1, 4)]}], stop)
    handler = RecordingHandler(on_process=lambda tp: stop.set())  # the signal arrives mid-batch
    await _run(source, stop, handler)
    assert handler.flushed == [(0, 0), (0, 1), (1, 4)]
    assert source.commits == [{P0: 2, P1: 5}]


async def test_a_failed_commit_is_carried_by_the_next_one() -> None:
    stop = asyncio.Event()
    source = FakeSource([{P0: [record(0, 0)], P1: [record(1, 0)]}, {P0: [record(0, 1)]}], stop)
    source.failing_commits = 1
    await _run(source, stop, RecordingHandler())
    assert source.commits == [{P0: 2, P1: 1}]


async def test_records_of_a_partition_revoked_mid_batch_are_left_to_its_new_owner() -> None:
    stop = asyncio.Event()
    source = FakeSource([{P0: [record(0, 0), record(0, 1)], P1: [record(1, 0)]}], stop)

    def revoke_p1(tp: TopicPartition) -> None:
        source.assigned = {P0}  # a rebalance takes P1 away while P0's records are handled

    handler = RecordingHandler(on_process=revoke_p1)
    await _run(source, stop, handler)
    assert handler.flushed == [(0, 0), (0, 1)]
    assert source.commits == [{P0: 2}]


async def test_revoking_partitions_flushes_then_commits_what_was_processed_on_them() -> None:
    stop = asyncio.Event()
    source = FakeSource([], stop)
    committer = Committer(source, PendingOffsets(), ConsumerMetrics())
    handler = RecordingHandler()
    await handler.process(P0, [record(0, 3)])
    await handler.process(P1, [record(1, 8)])
    listener = RebalanceHandler(handler, committer)
    await listener.on_partitions_assigned([P0, P1])
    assert listener.assigned
    await listener.on_partitions_revoked([P0])
    assert handler.flushed == [(0, 3), (1, 8)]
    assert source.commits == [{P0: 4}]
    assert committer.pending.take() == {P1: 9}
    assert not listener.assigned


async def test_a_commit_updates_the_lag_per_partition() -> None:
    stop = asyncio.Event()
    source = FakeSource([{P0: [record(0, 5), record(0, 6)]}], stop)
    committer = await _run(source, stop, RecordingHandler())
    assert committer.metrics.lag.labels(TOPIC, "0")._value.get() == 100 - 7


async def test_each_assignment_counts_as_a_rebalance() -> None:
    committer = Committer(FakeSource([], asyncio.Event()), PendingOffsets(), ConsumerMetrics())
    listener = RebalanceHandler(RecordingHandler(), committer)
    await listener.on_partitions_assigned([P0, P1])
    await listener.on_partitions_revoked([P0, P1])
    await listener.on_partitions_assigned([])  # an empty assignment is a rebalance too
    rebalances = committer.metrics.registry.get_sample_value("biometrics_consumer_rebalances_total")
    assert rebalances == 2
