from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from consumer_service import CommitOnRevoke, PendingOffsets, consume

TOPIC = "BiometricsImported"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def record(partition: int, offset: int, value: bytes | None = b"v", key: bytes = b"k") -> Any:
    return ConsumerRecord(
        TOPIC, partition, offset, 0, 0, key, value, None, len(key), len(value or b""), []
    )


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


async def _run(source: FakeSource, stop: asyncio.Event, process: Any = None) -> list[int]:
    seen: list[int] = []

    async def remember(r: Any) -> None:
        seen.append(r.offset)

    await consume(
        source, process or remember, stop, PendingOffsets(), poll_timeout_ms=10, max_records=10
    )
    return seen


async def test_offsets_are_committed_as_last_offset_plus_one_per_partition() -> None:
    stop = asyncio.Event()
    source = FakeSource([{P0: [record(0, 5), record(0, 6)], P1: [record(1, 9)]}], stop)
    assert await _run(source, stop) == [5, 6, 9]
    assert source.commits == [{P0: 7, P1: 10}]


async def test_a_failing_record_leaves_itself_and_the_rest_of_its_batch_uncommitted() -> None:
    stop = asyncio.Event()
    source = FakeSource([{P0: [record(0, 0)]}, {P0: [record(0, 1), record(0, 2)]}], stop)

    async def process(r: Any) -> None:
        if r.offset == 1:
            raise RuntimeError("dead-letter topic unreachable")

    try:
        await _run(source, stop, process)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failure was swallowed")
    assert source.commits == [{P0: 1}]


async def test_the_batch_in_hand_is_finished_and_committed_after_stop() -> None:
    stop = asyncio.Event()
    source = FakeSource([{P0: [record(0, 0), record(0, 1)]}], stop)
    seen: list[int] = []

    async def process(r: Any) -> None:
        stop.set()  # the signal arrives mid-batch
        seen.append(r.offset)

    await _run(source, stop, process)
    assert seen == [0, 1]
    assert source.commits == [{P0: 2}]


async def test_a_failed_commit_is_carried_by_the_next_one() -> None:
    stop = asyncio.Event()
    source = FakeSource([{P0: [record(0, 0)], P1: [record(1, 0)]}, {P0: [record(0, 1)]}], stop)
    source.failing_commits = 1
    assert await _run(source, stop) == [0, 0, 1]
    assert source.commits == [{P0: 2, P1: 1}]


async def test_records_of_a_partition_revoked_mid_batch_are_left_to_its_new_owner() -> None:
    stop = asyncio.Event()
    source = FakeSource([{P0: [record(0, 0), record(0, 1)], P1: [record(1, 0)]}], stop)

    async def process(r: Any) -> None:
        source.assigned = {P1}  # a rebalance takes P0 away while the first record is handled

    seen = []

    async def remember(r: Any) -> None:
        await process(r)
        seen.append((r.partition, r.offset))

    await _run(source, stop, remember)
    assert seen == [(0, 0), (1, 0)]
    assert source.commits == [{P1: 1}]


async def test_revoking_partitions_commits_what_was_handled_on_them() -> None:
    stop = asyncio.Event()
    source = FakeSource([], stop)
    pending = PendingOffsets()
    pending.handled(record(0, 3))
    pending.handled(record(1, 8))
    listener = CommitOnRevoke(pending)
    listener.source = source
    await listener.on_partitions_revoked([P0])
    assert source.commits == [{P0: 4}]
    assert pending.take() == {P1: 9}
