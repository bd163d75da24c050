"""The zone processor's transactions against a real broker, in process: aborts, fencing by the
partition's next producer, poison records."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import TopicPartition

from shared.runtime.settings import Settings
from tests.support.kafka import TopicFactory
from tests.support.topics import fill_topic, read_all, read_pairs, wait_until_committed
from tests.support.zones import (
    expected_zone_records,
    process,
    process_aborting_once,
    zone_bodies,
    zone_member,
    zone_settings,
)
from zones_service.service import start_transactional_producer
from zones_service.transactions import FencedError

EVENTS = 40  # four transactions of ten records


async def _topics(topic_factory: TopicFactory) -> tuple[str, str, str]:
    """The input, zone and dead-letter topics, one partition each."""
    return await topic_factory(1), await topic_factory(1), await topic_factory(1)


async def _filled(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str, seed: int
) -> tuple[Settings, list[tuple[bytes, bytes]]]:
    """Zone settings on fresh topics, the input filled with EVENTS records of `seed`."""
    topic, zones_topic, dlq = await _topics(topic_factory)
    records = zone_bodies(EVENTS, seed=seed)
    await fill_topic(kafka_bootstrap, topic, records)
    return zone_settings(kafka_bootstrap, topic, group_id, zones_topic, dlq), records


async def test_an_aborted_transaction_is_seen_by_read_uncommitted_readers_only(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    settings, records = await _filled(kafka_bootstrap, topic_factory, group_id, seed=7)
    zones_topic = settings.zones.topic

    # The second transaction's zone events are produced and acknowledged when it fails.
    counts = await process_aborting_once(settings, 2, {0: EVENTS})
    committed = await read_pairs(kafka_bootstrap, zones_topic, 1, "read_committed")
    uncommitted = await read_pairs(kafka_bootstrap, zones_topic, 1, "read_uncommitted")
    aborted = uncommitted - committed
    print(f"abort: transactions aborted={counts.aborted}, aborted records={aborted.total()}")
    assert counts.aborted == 1
    assert committed == expected_zone_records(records)
    assert aborted.total() > 0
    assert aborted <= expected_zone_records(records[10:20])


async def test_the_partitions_next_producer_fences_a_stalled_owner_which_duplicates_nothing(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    settings, records = await _filled(kafka_bootstrap, topic_factory, group_id, seed=11)
    zones_topic = settings.zones.topic
    paused, resume = asyncio.Event(), asyncio.Event()

    async def pause_the_second(transaction: int) -> None:
        if transaction == 2:  # as a process stalled mid-transaction would
            paused.set()
            await resume.wait()

    async with zone_member(settings, pause_the_second) as (consumer, owner):
        older = asyncio.create_task(process(settings, consumer, owner, asyncio.Event()))
        async with asyncio.timeout(30):
            await paused.wait()
        # What the partition's next owner does first: start a producer with its transactional id.
        newer = await start_transactional_producer(
            settings, TopicPartition(settings.kafka.topic, 0)
        )
        await newer.stop()
        resume.set()
        with pytest.raises(FencedError, match="belongs to another instance"):
            async with asyncio.timeout(30):
                await older
    stop = asyncio.Event()
    async with zone_member(settings) as (consumer, owner):
        task = asyncio.create_task(process(settings, consumer, owner, stop))
        await wait_until_committed(kafka_bootstrap, group_id, {0: EVENTS})
        stop.set()
        await task
    committed = await read_pairs(kafka_bootstrap, zones_topic, 1, "read_committed")
    uncommitted = await read_pairs(kafka_bootstrap, zones_topic, 1, "read_uncommitted")
    assert committed == expected_zone_records(records)
    # The stalled owner's second batch was written, then aborted when the newer producer started.
    assert uncommitted - committed == expected_zone_records(records[10:20])


async def test_poison_records_are_dead_lettered_in_the_transaction_and_the_partition_goes_on(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic, dlq = await _topics(topic_factory)
    first, last = zone_bodies(2, seed=13)
    poison = [
        (b"k1", b"this is not JSON"),
        (b"k2", orjson.dumps({"deviceId": "not-a-uuid", "heartRates": []})),
        (b"k3", None),
    ]
    await fill_topic(kafka_bootstrap, topic, [first, *poison, last])
    settings = zone_settings(kafka_bootstrap, topic, group_id, zones_topic, dlq)
    stop = asyncio.Event()
    async with zone_member(settings) as (consumer, owner):
        task = asyncio.create_task(process(settings, consumer, owner, stop))
        await wait_until_committed(kafka_bootstrap, group_id, {0: 5})
        stop.set()
        await task
    zones = await read_pairs(kafka_bootstrap, zones_topic, 1, "read_committed")
    assert zones == expected_zone_records([first, last])
    letters = await read_all(kafka_bootstrap, dlq, 1, "read_committed")
    assert [(letter.key, letter.value) for letter in letters] == poison
    headers = [dict(letter.headers) for letter in letters]
    assert [h["dlq.original.offset"] for h in headers] == [b"1", b"2", b"3"]
    assert all(h["dlq.original.topic"] == topic.encode() for h in headers)
    assert b"Invalid JSON" in headers[0]["dlq.error"]
    assert b"deviceId" in headers[1]["dlq.error"]
    assert b"no value" in headers[2]["dlq.error"]
