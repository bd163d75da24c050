"""The transactional loop, against a fake source and a fake transactional producer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import ProducerFenced

from consumer_service.zones import (
    AbortFailedError,
    FencedError,
    Output,
    TransactionCounts,
    consume_transactionally,
)

TOPIC, GROUP = "in", "zones"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def _record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    value = f"{partition}:{offset}".encode()
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, b"k", value, None, 1, len(value), [])


def _echo(record: ConsumerRecord[Any, Any]) -> list[Output]:
    return [Output("out", record.key, record.value, [])]


class FakeSource:
    """Partitions of records read from a position that seek moves; sets stop when drained."""

    def __init__(self, logs: Mapping[TopicPartition, int], stop: asyncio.Event) -> None:
        self.logs = {tp: [_record(tp.partition, o) for o in range(n)] for tp, n in logs.items()}
        self.positions = dict.fromkeys(logs, 0)
        self.seeks: list[tuple[TopicPartition, int]] = []
        self._stop = stop

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
        return batch

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))
        self.positions[partition] = offset


class FakeTransactionalProducer:
    """Keeps what committed transactions produced and the offsets they carried."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.committed: list[bytes | None] = []
        self.committed_offsets: dict[TopicPartition, int] = {}
        self.fail_offsets: list[Exception] = []
        self.fail_commit: list[Exception] = []
        self.fail_abort: list[Exception] = []
        self._open: list[bytes | None] = []
        self._open_offsets: dict[TopicPartition, int] = {}

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        self.calls.append("send")
        self._open.append(value)
        delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

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


async def _run(source: FakeSource, producer: FakeTransactionalProducer) -> TransactionCounts:
    return await consume_transactionally(
        source,
        producer,
        _echo,
        source._stop,
        group_id=GROUP,
        poll_timeout_ms=1,
        max_records=2,
        retry_backoff_s=0,
    )


def _everything(source: FakeSource) -> Sequence[bytes | None]:
    return [record.value for log in source.logs.values() for record in log]


async def test_each_batch_is_one_transaction_carrying_its_next_offsets() -> None:
    source, producer = FakeSource({P0: 2, P1: 1}, asyncio.Event()), FakeTransactionalProducer()
    counts = await _run(source, producer)
    assert producer.calls == ["begin", "send", "send", "send", "offsets", "commit"]
    assert producer.committed_offsets == {P0: 2, P1: 1}
    assert (counts.committed, counts.records, counts.produced) == (1, 3, 3)


async def test_a_failed_transaction_is_aborted_and_its_batch_read_again_from_committed() -> None:
    source, producer = FakeSource({P0: 6}, asyncio.Event()), FakeTransactionalProducer()
    producer.fail_offsets = [RuntimeError("injected after producing")]
    counts = await _run(source, producer)
    assert producer.calls[:6] == ["begin", "send", "send", "offsets", "abort", "begin"]
    assert source.seeks == [(P0, 0)]
    assert producer.committed == _everything(source)
    assert producer.committed_offsets == {P0: 6}
    assert (counts.aborted, counts.committed) == (1, 3)


async def test_a_fenced_producer_stops_the_loop_without_aborting() -> None:
    source, producer = FakeSource({P0: 4}, asyncio.Event()), FakeTransactionalProducer()
    producer.fail_commit = [ProducerFenced()]
    with pytest.raises(FencedError):
        await _run(source, producer)
    assert "abort" not in producer.calls
    assert producer.committed == []


async def test_a_transaction_that_cannot_be_aborted_stops_the_loop() -> None:
    source, producer = FakeSource({P0: 4}, asyncio.Event()), FakeTransactionalProducer()
    producer.fail_commit = [RuntimeError("commit failed")]
    producer.fail_abort = [AssertionError("Invalid state transition")]
    with pytest.raises(AbortFailedError, match="commit failed"):
        await _run(source, producer)
    assert source.seeks == []
