"""Scenarios where the producer is pushed: stopped under load, and overloaded."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx2 as httpx

from tests.support.kafka import TopicFactory
from tests.support.processes import service_process
from tests.support.samples import event_body
from tests.support.servers import serving_producer
from tests.support.settings import service_env, settings_for
from tests.support.topics import read_topic


async def test_sigterm_under_load_never_answers_202_for_a_record_not_in_the_topic(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic = await topic_factory(3)
    env = service_env(kafka_bootstrap, topic, group_id, PRODUCER__LINGER_MS="50")
    accepted: list[str] = []
    outcomes: Counter[str] = Counter()
    enough = asyncio.Event()

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            body = event_body(readings=1)
            try:
                response = await client.post("/biometrics", json=body)
            except httpx.TransportError as error:
                outcomes[type(error).__name__] += 1
                return  # the server is gone: a cut-off request, never a false 202
            outcomes[str(response.status_code)] += 1
            if response.status_code == 202:
                accepted.append(body["deviceId"])
                if len(accepted) >= 500:
                    enough.set()

    async with service_process("producer_service", env) as producer:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=await producer.url(), limits=limits) as client:
            workers = [asyncio.create_task(worker(client)) for _ in range(32)]
            async with asyncio.timeout(60):
                await enough.wait()
            code = await producer.finish()
            async with asyncio.timeout(60):
                await asyncio.gather(*workers)
    assert code == 0
    assert set(outcomes) - {"202", "503"} <= {"ConnectError", "RemoteProtocolError", "ReadError"}
    records = await read_topic(kafka_bootstrap, topic, len(accepted))
    in_topic = Counter(r.key.decode() for r in records)
    print(f"producer SIGTERM: outcomes={dict(outcomes)}, in topic={len(records)}")
    assert all(in_topic[device] == 1 for device in accepted)


async def test_overload_is_refused_at_once_and_every_accepted_event_is_delivered(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic = await topic_factory(3)
    # A long linger holds accepted records in flight, so the bound is reached and stays reached.
    producer = {"linger_ms": 1500, "max_in_flight_records": 20}
    settings = settings_for(kafka_bootstrap, topic, group_id, producer=producer)
    bodies = [event_body(readings=1) for _ in range(100)]
    finished: list[tuple[int, str]] = []

    async def post(client: httpx.AsyncClient, body: dict[str, object]) -> None:
        response = await client.post("/biometrics", json=body)
        finished.append((response.status_code, response.headers.get("retry-after", "")))
        if response.status_code == 202:
            accepted.append(str(body["deviceId"]))

    accepted: list[str] = []
    limits = httpx.Limits(max_connections=100)
    async with (
        serving_producer(settings) as (url, _),
        httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client,
    ):
        await asyncio.gather(*(post(client, body) for body in bodies))
    statuses = Counter(status for status, _ in finished)
    print(f"overload: {dict(statuses)}")
    assert statuses[202] >= 20 and statuses[503] >= 50, statuses
    assert set(statuses) == {202, 503}
    # Refused at once: every 503 came back before the first 202, which waits out the linger.
    first_accepted = next(i for i, (status, _) in enumerate(finished) if status == 202)
    assert statuses[503] == first_accepted
    assert all(retry == "1" for status, retry in finished if status == 503)
    records = await read_topic(kafka_bootstrap, topic, len(accepted))
    assert sorted(r.key.decode() for r in records) == sorted(accepted)
