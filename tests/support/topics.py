"""A topic's records and a group's offsets, as any other client sees them: written straight in,
read to the end at either isolation level, and awaited."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import GroupCoordinatorNotAvailableError

from shared.kafka.adapter import committed_offsets as shared_committed_offsets
from tests.support.polling import eventually

RawRecord = tuple[bytes | None, bytes | None]
Records = Counter[RawRecord]


async def fill_topic(bootstrap: str, topic: str, records: list[RawRecord]) -> None:
    """Write raw (key, value) records straight into the topic, as any other client could."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, count: int, timeout_s: float = 30
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read the first `count` records of every partition with a fresh, group-less consumer."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for partition_records in batch.values():
                    records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def read_all(
    bootstrap: str, topic: str, partitions: int, isolation_level: str
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record a reader at this isolation level sees, up to each partition's end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        # For read_committed the end is the last stable offset: no transaction is open past it.
        ends = await consumer.end_offsets(tps)
        async with asyncio.timeout(30):
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                batch = await consumer.getmany(timeout_ms=200)
                records += [record for partition in batch.values() for record in partition]
    finally:
        await consumer.stop()
    return records


async def read_pairs(bootstrap: str, topic: str, partitions: int, isolation_level: str) -> Records:
    """The (key, value) pairs read_all finds, counted."""
    records = await read_all(bootstrap, topic, partitions, isolation_level)
    return Counter((record.key, record.value) for record in records)


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's end offset: where a processor that has read everything commits."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def committed_offsets(bootstrap: str, group_id: str) -> dict[int, int]:
    """The group's committed offset per partition, as the broker reports it."""
    offsets = await eventually(
        lambda: shared_committed_offsets({"bootstrap_servers": bootstrap}, group_id),
        lambda _: True,
        timeout_s=30,
        awaiting=f"the offsets of group {group_id}",
        # A fresh broker creates __consumer_offsets on first use; ask again.
        ignoring=(GroupCoordinatorNotAvailableError,),
    )
    return {tp.partition: offset for tp, offset in offsets.items()}


async def wait_until_committed(
    bootstrap: str, group_id: str, ends: Mapping[int, int], timeout_s: float = 60
) -> None:
    """Poll the group's committed offsets until they are `ends` (partition -> offset)."""
    await eventually(
        lambda: committed_offsets(bootstrap, group_id),
        lambda offsets: offsets == ends,
        timeout_s=timeout_s,
        awaiting=f"group {group_id} committing {dict(ends)}",
    )


async def wait_until_caught_up(
    bootstrap: str, topic: str, partitions: int, group_id: str, timeout_s: float = 60
) -> dict[int, int]:
    """Wait until the group has committed the topic's end offsets as they are now (it has
    handled everything written so far); return those offsets."""
    ends = await end_offsets(bootstrap, topic, partitions)
    await wait_until_committed(bootstrap, group_id, ends, timeout_s)
    return ends
