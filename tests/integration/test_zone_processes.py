"""The zone processor as a real process: SIGKILLed again and again, and fenced by its twin."""

from __future__ import annotations

import asyncio
import random
import signal

from consumer_service.zones import TRANSACTION_COMMITTED
from tests.integration.conftest import TopicFactory
from tests.integration.harness import committed_offsets, fill_topic, service_env, service_process
from tests.integration.zone_harness import (
    end_offsets,
    expected_zone_records,
    read_pairs,
    wait_until_committed,
    zone_bodies,
)

PARTITIONS, EVENTS, BATCH, KILLS = 3, 1500, 20, 6


def _committed(line: dict[str, object]) -> bool:
    return line["message"] == TRANSACTION_COMMITTED


async def test_a_processor_killed_at_random_points_writes_every_zone_event_exactly_once(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic = await topic_factory(PARTITIONS), await topic_factory(PARTITIONS)
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    records = zone_bodies(EVENTS, seed)
    await fill_topic(kafka_bootstrap, topic, records)
    ends = await end_offsets(kafka_bootstrap, topic, PARTITIONS)
    env = _env(kafka_bootstrap, topic, group_id, zones_topic)
    for _ in range(KILLS):
        async with service_process("consumer_service.zones", env) as processor:
            await processor.wait_for(_committed, rng.randint(1, 6))
            # Not a wait for anything: a random instant after that commit is the kill point,
            # so kills land before, during and after the produce of the next transaction.
            await asyncio.sleep(rng.uniform(0, 0.05))
            assert await processor.finish(signal.SIGKILL) == -signal.SIGKILL
    done_before_last_run = sum((await committed_offsets(kafka_bootstrap, group_id)).values())
    assert done_before_last_run < EVENTS, "the processor finished before the last kill"
    async with service_process("consumer_service.zones", env) as processor:
        await wait_until_committed(kafka_bootstrap, group_id, ends)
        assert await processor.finish() == 0
    expected = expected_zone_records(records)
    seen = await read_pairs(kafka_bootstrap, zones_topic, PARTITIONS, "read_committed")
    written = await read_pairs(kafka_bootstrap, zones_topic, PARTITIONS, "read_uncommitted")
    duplicates, missing = (seen - expected).total(), (expected - seen).total()
    print(
        f"zone crash test (seed {seed}): kills={KILLS}, input events={EVENTS}, "
        f"expected={expected.total()}, seen={seen.total()}, duplicates={duplicates}, "
        f"missing={missing}, aborted records visible to read_uncommitted="
        f"{(written - seen).total()}, committed before the last run={done_before_last_run}"
    )
    assert seen == expected
    assert not (seen - expected) and not (expected - seen)


async def test_a_second_process_with_the_same_instance_number_fences_the_first(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic = await topic_factory(PARTITIONS), await topic_factory(PARTITIONS)
    records, more = zone_bodies(EVENTS, seed=5), zone_bodies(100, seed=6)
    await fill_topic(kafka_bootstrap, topic, records)
    env = _env(kafka_bootstrap, topic, group_id, zones_topic)
    async with service_process("consumer_service.zones", env) as older:
        await older.wait_for(_committed)
        async with service_process("consumer_service.zones", env) as newer:
            await newer.wait_for_message("zone processor started")
            # Input for the older one too, in case it had read everything and sat idle.
            await fill_topic(kafka_bootstrap, topic, more)
            async with asyncio.timeout(60):  # it exits by itself: no signal
                await older.process.wait()
            assert await older.finish() == 1
            ends = await end_offsets(kafka_bootstrap, topic, PARTITIONS)
            await wait_until_committed(kafka_bootstrap, group_id, ends)
            assert await newer.finish() == 0
    [error] = older.matching(lambda line: line["message"] == "zone processor stopped by an error")
    assert "FencedError" in error["error"]
    seen = await read_pairs(kafka_bootstrap, zones_topic, PARTITIONS, "read_committed")
    assert seen == expected_zone_records(records + more)


def _env(bootstrap: str, topic: str, group_id: str, zones_topic: str) -> dict[str, str]:
    return service_env(
        bootstrap,
        topic,
        group_id,
        ZONES__TOPIC=zones_topic,
        ZONES__GROUP_ID=group_id,
        CONSUMER__MAX_POLL_RECORDS=str(BATCH),
    )
