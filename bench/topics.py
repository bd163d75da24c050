"""Fresh topics for each row, how many records a topic holds and how many a group has
committed, asked of the broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

_READY_TIMEOUT_S = 30.0


def create_topic(bootstrap: str, prefix: str, partitions: int) -> str:
    """Create `<prefix>-<uuid>` and return its name once every partition has a leader."""
    name = f"bench-{prefix}-{uuid.uuid4().hex[:12]}"
    asyncio.run(_create(bootstrap, name, partitions))
    return name


def count_records(bootstrap: str, topic: str) -> int:
    """The sum of the topic's end offsets: every record ever appended to it."""
    return asyncio.run(_count(bootstrap, topic))


def count_committed(bootstrap: str, group: str, topic: str) -> int:
    """The sum of the group's committed offsets in the topic: the records it has committed."""
    return asyncio.run(_committed(bootstrap, group, topic))


async def _create(bootstrap: str, name: str, partitions: int) -> None:
    async with _admin(bootstrap) as admin:
        await admin.create_topics([NewTopic(name, partitions, 1)])
        async with asyncio.timeout(_READY_TIMEOUT_S):
            while True:
                (topic,) = await admin.describe_topics([name])
                found = topic["partitions"]
                if len(found) == partitions and all(p["leader"] >= 0 for p in found):
                    return
                await asyncio.sleep(0.05)


async def _count(bootstrap: str, topic: str) -> int:
    async with _admin(bootstrap) as admin:
        (description,) = await admin.describe_topics([topic])
    partitions = [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    async with _admin(bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


@asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()
