"""The zone processor's transactions against a real broker: aborts, zombies, poison records."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from consumer_service.zones import FencedError, process_zones, zone_clients
from tests.integration.conftest import TopicFactory
from tests.integration.harness import fill_topic
from tests.integration.zone_harness import (
    InterceptedProducer,
    expected_zone_records,
    read_all,
    read_pairs,
    wait_until_committed,
    zone_bodies,
    zone_settings,
)

EVENTS = 40  # four transactions of ten records


async def _topics(topic_factory: TopicFactory) -> tuple[str, str, str]:
    """The input, zone and dead-letter topics, one partition each."""
    return await topic_factory(1), await topic_factory(1), await topic_factory(1)


async def test_an_aborted_transaction_is_seen_by_read_uncommitted_readers_only(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic, dlq = await _topics(topic_factory)
    records = zone_bodies(EVENTS, seed=7)
    await fill_topic(kafka_bootstrap, topic, records)
    settings = zone_settings(kafka_bootstrap, topic, group_id, zones_topic, dlq)

    async def fail_the_second(transaction: int) -> None:
        if transaction == 2:  # its zone events are produced and acknowledged by now
            raise RuntimeError("injected after producing")

    stop = asyncio.Event()
    async with zone_clients(settings) as (consumer, producer):
        intercepted = InterceptedProducer(producer, fail_the_second)
        task = asyncio.create_task(process_zones(settings, consumer, intercepted, stop))
        await wait_until_committed(kafka_bootstrap, group_id, {0: EVENTS})
        stop.set()
        counts = await task
    committed = await read_pairs(kafka_bootstrap, zones_topic, 1, "read_committed")
    uncommitted = await read_pairs(kafka_bootstrap, zones_topic, 1, "read_uncommitted")
    aborted = uncommitted - committed
    print(f"abort: transactions aborted={counts.aborted}, aborted records={aborted.total()}")
    assert counts.aborted == 1
    assert committed == expected_zone_records(records)
    assert aborted.total() > 0
    assert aborted <= expected_zone_records(records[10:20])


async def test_a_zombie_with_the_same_transactional_id_is_fenced_and_duplicates_nothing(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic, dlq = await _topics(topic_factory)
    records = zone_bodies(EVENTS, seed=11)
    await fill_topic(kafka_bootstrap, topic, records)
    settings = zone_settings(kafka_bootstrap, topic, group_id, zones_topic, dlq)
    paused, resume = asyncio.Event(), asyncio.Event()

    async def pause_the_second(transaction: int) -> None:
        if transaction == 2:  # as a process stalled mid-transaction would
            paused.set()
            await resume.wait()

    async with zone_clients(settings) as (consumer, producer):
        zombie = InterceptedProducer(producer, pause_the_second)
        older = asyncio.create_task(process_zones(settings, consumer, zombie, asyncio.Event()))
        async with asyncio.timeout(30):
            await paused.wait()
        # Same settings, so the same transactional id: starting its producer fences the older.
        async with zone_clients(settings) as (new_consumer, new_producer):
            resume.set()
            with pytest.raises(FencedError):
                async with asyncio.timeout(30):
                    await older
            stop = asyncio.Event()
            newer = asyncio.create_task(process_zones(settings, new_consumer, new_producer, stop))
            await wait_until_committed(kafka_bootstrap, group_id, {0: EVENTS})
            stop.set()
            await newer
    committed = await read_pairs(kafka_bootstrap, zones_topic, 1, "read_committed")
    uncommitted = await read_pairs(kafka_bootstrap, zones_topic, 1, "read_uncommitted")
    assert committed == expected_zone_records(records)
    # The zombie's second batch was written, then aborted when the newer producer started.
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
    async with zone_clients(settings) as (consumer, producer):
        task = asyncio.create_task(process_zones(settings, consumer, producer, stop))
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
