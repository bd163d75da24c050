"""shared.kafka.adapter against a live broker: what only started clients show (metadata
answers, partition counts, the group coordinator, the consumer's connections)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from devtools.processes import free_port
from shared.kafka.adapter import (
    TopicSpec,
    bootstrap_addresses,
    broker_ids,
    close_consumer_connections,
    cluster_client,
    committed_offsets,
    coordinator_known,
    create_topics,
    delete_topics,
    describe_topics,
    fetch_topic_names,
    log_in_once,
    topic_configs,
    topic_metadata,
    watch_partition_count,
)
from tests.support.kafka import TopicFactory
from tests.support.polling import eventually


async def test_one_connection_logs_in_to_a_broker_and_fails_on_a_closed_port(
    kafka_bootstrap: str,
) -> None:
    options = {"client_id": "adapter-test", "request_timeout_ms": 5000}
    [(host, port)] = bootstrap_addresses(kafka_bootstrap)
    await log_in_once(host, port, options)
    with pytest.raises((OSError, KafkaError)):
        await log_in_once("127.0.0.1", free_port(), options)


async def test_topics_are_created_once_and_an_existing_ones_partitions_are_counted(
    kafka_bootstrap: str,
) -> None:
    name = f"test-{uuid.uuid4().hex}"
    options = {"bootstrap_servers": kafka_bootstrap}
    first = await create_topics(options, [TopicSpec(name, 2, 1, {"retention.ms": "60000"})])
    assert (first.created, first.existing_partitions) == ([name], {})
    again = await create_topics(options, [TopicSpec(name, 5, 1)])
    assert (again.created, again.existing_partitions) == ([], {name: 2})


async def test_a_named_broker_describes_a_topic_with_leaders_and_does_not_create_a_missing_one(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic, missing = await topic_factory(3), f"test-missing-{uuid.uuid4().hex}"
    async with cluster_client({"bootstrap_servers": kafka_bootstrap}) as client:
        [node_id] = broker_ids(client)
        for _ in range(2):  # asking twice: the first ask created nothing
            described = {
                entry["topic"]: entry
                for entry in await topic_metadata(client, node_id, [topic, missing])
            }
            assert described[topic]["error_code"] == 0
            assert sorted(p["partition"] for p in described[topic]["partitions"]) == [0, 1, 2]
            assert all(p["leader"] == node_id for p in described[topic]["partitions"])
            assert described[missing]["error_code"] != 0
            assert described[missing]["partitions"] == []


async def test_a_producer_fetches_the_topic_names_and_follows_the_partition_count(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        counts: list[int] = []
        unwatch = watch_partition_count(producer, topic, counts.append)
        await producer.partitions_for(topic)
        assert counts[-1] == 3
        unwatch()
        assert topic in await fetch_topic_names(producer)
    finally:
        await producer.stop()


async def test_a_consumer_in_its_group_knows_its_coordinator_and_its_connections_close(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic = await topic_factory(1)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group_id)
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=200)
        assert coordinator_known(consumer)
        connections = list(consumer._client._conns.values())
        assert connections and all(connection.connected() for connection in connections)
        await close_consumer_connections(consumer)
        assert not any(connection.connected() for connection in connections)
    finally:
        await consumer.stop()


async def test_a_topic_is_described_with_its_replicas_and_in_sync_set_then_deleted(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic, options = await topic_factory(2), {"bootstrap_servers": kafka_bootstrap}
    [described] = await describe_topics(options, [topic])
    assert (described["topic"], described["error_code"]) == (topic, 0)
    partitions = sorted(described["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in partitions] == [0, 1]
    assert all(p["leader"] >= 0 and p["isr"] == p["replicas"] for p in partitions)
    assert topic in {entry["topic"] for entry in await describe_topics(options)}
    await delete_topics(options, [topic])
    await eventually(
        lambda: describe_topics(options),
        lambda topics: topic not in {entry["topic"] for entry in topics},
        timeout_s=30,
        awaiting=f"topic {topic} deleted",
    )


async def test_a_topics_configs_are_read_by_name(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    configs = await topic_configs({"bootstrap_servers": kafka_bootstrap}, await topic_factory(1))
    assert configs["cleanup.policy"] == "delete"
    assert configs["retention.ms"].isdigit()


async def test_a_groups_committed_offsets_are_listed_per_partition(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic = await topic_factory(2)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await consumer.commit({TopicPartition(topic, 0): 3, TopicPartition(topic, 1): 5})
    finally:
        await consumer.stop()
    offsets = await committed_offsets({"bootstrap_servers": kafka_bootstrap}, group_id)
    assert offsets == {TopicPartition(topic, 0): 3, TopicPartition(topic, 1): 5}
