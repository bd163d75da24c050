"""LocalKafkaCluster: three real KRaft nodes; the leader of a partition SIGKILLed between acks=all
writes loses nothing, and the node comes back."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from devtools.local_cluster import LocalKafkaCluster
from shared.kafka.adapter import TopicSpec, create_topics
from tests.support.topics import read_topic

pytestmark = pytest.mark.cluster


async def _produce(bootstrap: str, topic: str, values: range) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=10000
    )
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, str(value).encode(), partition=0)
    finally:
        await producer.stop()


async def test_a_killed_leader_loses_no_acknowledged_write_and_restarts(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    await create_topics(
        {"bootstrap_servers": kafka_cluster.bootstrap_servers},
        [TopicSpec("replicated", 1, 3, {"min.insync.replicas": "2"})],
    )
    await _produce(kafka_cluster.bootstrap_servers, "replicated", range(100))
    leader = await kafka_cluster.leader("replicated", 0)
    leader.kill()
    assert not leader.is_running
    await _produce(kafka_cluster.bootstrap_servers, "replicated", range(100, 200))  # two of three
    assert await kafka_cluster.leader("replicated", 0) is not leader
    await asyncio.to_thread(leader.start)  # back on its data dir and ports
    records = await read_topic(kafka_cluster.bootstrap_servers, "replicated", 200)
    assert [int(record.value) for record in records] == list(range(200))
