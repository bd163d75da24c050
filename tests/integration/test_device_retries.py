"""A device's retries end to end, every service a real process on the real broker: the same
requests sent to two producer processes and again after a producer restart put copies in the
topic, while the zone processor is SIGKILLed and restarted and a second instance joins; every
zone event is still read once (read_committed), and the consumer logs each event once."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid

import httpx2 as httpx
import orjson

from devtools.local_kafka import LocalKafka
from tests.support.kafka import TopicFactory
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess, service_process
from tests.support.settings import service_env
from tests.support.topics import (
    end_offsets,
    read_all,
    wait_until_caught_up,
    wait_until_committed,
)
from tests.support.zones import report_exactly_once, zone_bodies

PARTITIONS = 3
EVENTS = 60
SESSION_TIMEOUT_MS = 6000  # the broker's smallest: a SIGKILLed instance's partitions move on


async def test_retries_through_two_producers_a_restart_a_killed_and_a_joining_zone_processor(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic = await topic_factory(PARTITIONS), await topic_factory(PARTITIONS)
    env = service_env(
        kafka_bootstrap,
        topic,
        group_id,
        kafka__topic_partitions=str(PARTITIONS),
        zones__topic=zones_topic,
        zones__group_id=f"zones-{group_id}",
        zones__max_poll_records="10",
        zones__session_timeout_ms=str(SESSION_TIMEOUT_MS),
    )
    requests = [(f"retry-{uuid.uuid4().hex}", body) for _, body in zone_bodies(EVENTS, seed=41)]

    async def send(producer: ServiceProcess, chunk: list[tuple[str, bytes]]) -> None:
        async with httpx.AsyncClient(base_url=await producer.url(), timeout=30) as client:
            for key, body in chunk:
                answer = await client.post(
                    "/biometrics",
                    content=body,
                    headers={"Idempotency-Key": key, "Content-Type": "application/json"},
                )
                assert answer.status_code == 202, answer.text

    async with contextlib.AsyncExitStack() as stack:

        async def start(module: str) -> ServiceProcess:
            return await stack.enter_async_context(service_process(module, env))

        consumer, zones = await start("consumer_service"), await start("zones_service")
        await consumer.ready()
        first, second = await start("producer_service"), await start("producer_service")
        await send(first, requests[:40])
        await send(second, requests[:40])  # another replica: each a copy
        assert await zones.finish(signal.SIGKILL) == -signal.SIGKILL
        zones = await start("zones_service")
        await send(first, requests[20:60])  # 20 replays from memory, 20 new
        assert await first.finish() == 0
        restarted = await start("producer_service")
        joining = await start("zones_service")
        await send(restarted, requests[50:60])  # forgotten by the restart: copies again
        stored = 40 + 40 + 20 + 10
        offsets = await wait_until_caught_up(kafka_bootstrap, topic, PARTITIONS, group_id)
        assert sum(offsets.values()) == stored
        await wait_until_committed(kafka_bootstrap, f"zones-{group_id}", offsets)
        for service in (consumer, zones, joining, second, restarted):
            assert await service.finish() == 0

    logged = [line["idempotency_key"] for line in consumer.events()]
    assert sorted(logged) == sorted(key for key, _ in requests)
    inputs = [(None, body) for _, body in requests]
    await report_exactly_once("retries", 41, kafka_bootstrap, zones_topic, PARTITIONS, inputs)
    records = await read_all(kafka_bootstrap, topic, PARTITIONS, "read_uncommitted")
    copies = len(records) - len({dict(r.headers)["idempotency-key"] for r in records})
    assert copies == stored - EVENTS  # the copies were in the topic, and dropped downstream
    assert all(orjson.loads(r.value)["deviceId"] for r in records)


async def test_a_retry_after_a_503_whose_record_was_stored_is_dropped_downstream(
    own_kafka: LocalKafka,
) -> None:
    """The broker frozen past the delivery timeout: the device gets a 503, its record is stored
    once the broker resumes, and its retry stores a copy; one zone event, one consumer line."""
    bootstrap = own_kafka.bootstrap_servers
    topic, zones_topic = f"retry-503-{uuid.uuid4().hex[:8]}", f"zones-{uuid.uuid4().hex[:8]}"
    env = service_env(
        bootstrap,
        topic,
        "retry-503",
        kafka__topic_partitions="1",
        producer__delivery_timeout_ms="3000",
        zones__topic=zones_topic,
        zones__group_id="retry-503-zones",
    )
    [(_, body)] = zone_bodies(1, seed=43)
    headers = {"Idempotency-Key": "after-a-503", "Content-Type": "application/json"}
    async with contextlib.AsyncExitStack() as stack:

        async def start(module: str) -> ServiceProcess:
            return await stack.enter_async_context(service_process(module, env))

        producer, consumer = await start("producer_service"), await start("consumer_service")
        zones = await start("zones_service")
        await consumer.ready()
        async with httpx.AsyncClient(base_url=await producer.url(), timeout=30) as client:
            os.kill(own_kafka.pid, signal.SIGSTOP)
            try:
                lost = await client.post("/biometrics", content=body, headers=headers)
            finally:
                os.kill(own_kafka.pid, signal.SIGCONT)
            assert lost.status_code == 503, lost.text
            # The first record is stored once the broker resumes; the retry is a new request.
            offsets = await eventually(
                lambda: end_offsets(bootstrap, topic, 1),
                lambda ends: ends == {0: 1},
                timeout_s=30,
                awaiting="the record of the 503 stored once the broker resumed",
            )
            retry = await client.post("/biometrics", content=body, headers=headers)
            assert retry.status_code == 202, retry.text
            assert "idempotent-replayed" not in retry.headers
        await wait_until_committed(bootstrap, "retry-503", {0: 2})
        await wait_until_committed(bootstrap, "retry-503-zones", {0: 2})
        for service in (producer, consumer, zones):
            assert await service.finish() == 0
    assert offsets == {0: 1}
    assert [line["idempotency_key"] for line in consumer.events()] == ["after-a-503"]
    await report_exactly_once("503 then stored", 43, bootstrap, zones_topic, 1, [(None, body)])
