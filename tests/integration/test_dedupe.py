"""Copies of a device's event in the input topic (a retry produced again, same idempotency key)
against the real broker: the zone processor emits the event's zone events once, across a
restart and an aborted transaction, and the consumer logs the event once."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from consumer_service import EVENT_CONSUMED
from tests.support.kafka import TopicFactory
from tests.support.processes import service_process
from tests.support.settings import service_env
from tests.support.topics import RawRecord, read_pairs, wait_until_committed
from tests.support.zones import (
    expected_zone_records,
    process_aborting_once,
    zone_bodies,
    zone_settings,
)

Keyed = tuple[RawRecord, bytes | None]


async def _write(bootstrap: str, topic: str, records: list[Keyed]) -> None:
    """Each record with its idempotency-key header (none when None), as the producer writes it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for (key, value), idempotency_key in records:
            headers = [] if idempotency_key is None else [("idempotency-key", idempotency_key)]
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def _keyed(records: list[RawRecord], first: int) -> list[Keyed]:
    return [(record, f"key-{first + n}".encode()) for n, record in enumerate(records)]


async def test_the_zone_processor_emits_each_events_zones_once_across_restarts_and_aborts(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic, dlq = await topic_factory(1), await topic_factory(1), await topic_factory(1)
    events = zone_bodies(40, seed=23)
    first, second = _keyed(events[:20], 0), _keyed(events[20:], 20)
    # Copies of events 0-4 among the first run's records, one event without a key, twice.
    run_one = first[:10] + first[:5] + first[10:] + [(events[0], None)]
    settings = zone_settings(kafka_bootstrap, topic, group_id, zones_topic, dlq)
    await _write(kafka_bootstrap, topic, run_one)

    async def run(expected_offset: int, fail: int | None = None) -> int:
        counts = await process_aborting_once(settings, fail, {0: expected_offset})
        assert counts.aborted == (0 if fail is None else 1)
        return counts.dropped

    assert await run(len(run_one)) == 5
    # A new member, as after a crash: its memory comes from the log. Copies of events 5-14 of the
    # first run, then new events, with copies of two of them; its second transaction (of new
    # events: they must not pass for copies of themselves when read again) aborts.
    run_two = first[5:15] + second + second[:2]
    await _write(kafka_bootstrap, topic, run_two)
    assert await run(len(run_one) + len(run_two), fail=2) == 12

    seen = await read_pairs(kafka_bootstrap, zones_topic, 1, "read_committed")
    expected = expected_zone_records([*events, events[0]])  # the keyless copy is an event
    assert (seen - expected).total() == 0, "a zone event was emitted twice"
    assert (expected - seen).total() == 0, "a zone event is missing"


async def test_the_consumer_logs_a_copy_once_also_after_a_restart(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(1)
    env = service_env(
        kafka_bootstrap, topic, f"test-group-{uuid.uuid4().hex}", kafka__topic_partitions="1"
    )
    events = _keyed(zone_bodies(10, seed=5), 0)
    await _write(kafka_bootstrap, topic, events + events[:3])
    async with service_process("consumer_service", env) as consumer:
        await consumer.ready()
        await consumer.wait_for(lambda line: line["message"] == EVENT_CONSUMED, 10)
        await wait_until_committed(kafka_bootstrap, env["BIOMETRICS_CONSUMER__GROUP_ID"], {0: 13})
        assert await consumer.finish() == 0
    lines = consumer.events()
    # After a restart: copies of events already logged, then a new one.
    fresh = _keyed(zone_bodies(1, seed=6), 10)
    await _write(kafka_bootstrap, topic, events[3:6] + fresh)
    async with service_process("consumer_service", env) as restarted:
        await restarted.wait_for(lambda line: line["message"] == EVENT_CONSUMED, 1)
        await wait_until_committed(kafka_bootstrap, env["BIOMETRICS_CONSUMER__GROUP_ID"], {0: 17})
        assert await restarted.finish() == 0
    assert sorted(line["idempotency_key"] for line in lines) == sorted(
        key.decode() for _, key in events if key is not None
    )
    [line] = restarted.events()
    assert line["idempotency_key"] == "key-10"
