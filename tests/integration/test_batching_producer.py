"""The zone processor's BatchingProducer against a live broker: records appended inside a
transaction reach read_committed readers only once it commits, and records without a key are
spread over the partitions."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer

from shared.kafka.batcher import acknowledged
from shared.kafka.connecting import started
from tests.support.kafka import TopicFactory
from tests.support.topics import read_all
from zones_service.transactions import BatchingProducer


async def _transaction(
    producer: BatchingProducer, topic: str, records: list[tuple[bytes | None, bytes]], commit: bool
) -> None:
    """Append the records in one transaction, wait for every batch, then commit or abort."""
    await producer.begin_transaction()
    placed = [producer.append(topic, key, value, []) for key, value in records]
    await acknowledged({batch for batch, _ in placed})
    await (producer.commit_transaction() if commit else producer.abort_transaction())


@asynccontextmanager
async def _producer(bootstrap: str, topic: str) -> AsyncIterator[BatchingProducer]:
    """A transactional BatchingProducer of the topic, stopped after the block."""
    client = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        transactional_id=f"{topic}-tx",
    )
    producer = await started(BatchingProducer(client, [topic]))
    try:
        yield producer
    finally:
        await producer.stop()


async def test_appended_records_are_visible_once_committed_and_never_once_aborted(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(partitions=3)
    devices = [b"device-%d" % i for i in range(50)]
    async with _producer(kafka_bootstrap, topic) as producer:
        await _transaction(producer, topic, [(key, b"aborted") for key in devices], commit=False)
        await _transaction(producer, topic, [(key, b"committed") for key in devices], commit=True)

    committed = await read_all(kafka_bootstrap, topic, 3, "read_committed")
    everything = await read_all(kafka_bootstrap, topic, 3, "read_uncommitted")
    assert Counter(record.value for record in committed) == {b"committed": 50}
    assert Counter(record.value for record in everything) == {b"aborted": 50, b"committed": 50}
    # Keyed records go where the Java client puts them: one device, one partition.
    partitions = {record.key: record.partition for record in committed}
    assert all(record.partition == partitions[record.key] for record in everything)


async def test_records_without_a_key_go_to_every_partition_in_turn(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(partitions=3)
    async with _producer(kafka_bootstrap, topic) as producer:
        await _transaction(producer, topic, [(None, b"letter %d" % i) for i in range(9)], True)

    records = await read_all(kafka_bootstrap, topic, 3, "read_committed")
    assert Counter(record.partition for record in records) == {0: 3, 1: 3, 2: 3}
