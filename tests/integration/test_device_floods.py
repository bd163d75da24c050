"""A device that floods gets 429s while every other device gets its 202s, and the topic holds
exactly the events that got a 202: the producer as a real process, the real broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import httpx2 as httpx
import orjson

from tests.support.kafka import TopicFactory
from tests.support.processes import service_process
from tests.support.samples import event_body
from tests.support.settings import service_env
from tests.support.topics import read_all

RATE, BURST = 5, 5
SECONDS = 3
WELL_BEHAVED = 50
PARTITIONS = 3


async def test_one_device_flooding_beside_fifty_well_behaved_ones(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(PARTITIONS)
    env = service_env(
        kafka_bootstrap,
        topic,
        f"unused-{uuid.uuid4().hex}",
        http__device_rate_per_s=str(RATE),
        http__device_burst=str(BURST),
        kafka__topic_partitions=str(PARTITIONS),
    )
    flooder = str(uuid.uuid4())
    devices = [str(uuid.uuid4()) for _ in range(WELL_BEHAVED)]
    answers: list[tuple[str, httpx.Response]] = []

    async def post(client: httpx.AsyncClient, device: str) -> None:
        response = await client.post("/biometrics", json=event_body(device))
        answers.append((device, response))

    async def well_behaved(client: httpx.AsyncClient, device: str) -> None:
        for _ in range(SECONDS * RATE // 2):  # half its rate
            await post(client, device)
            await asyncio.sleep(2 / RATE)  # the load's pace, not a wait for something

    async def flood(client: httpx.AsyncClient) -> float:
        """20 times its rate, four requests at a time; return how long it took."""

        async def one_lane() -> None:
            for _ in range(SECONDS * RATE * 20 // 4):
                await post(client, flooder)
                await asyncio.sleep(4 / (RATE * 20))

        started = time.monotonic()
        await asyncio.gather(*(one_lane() for _ in range(4)))
        return time.monotonic() - started

    async with service_process("producer_service", env) as producer:
        url = await producer.url()
        limits = httpx.Limits(max_connections=WELL_BEHAVED + 4)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            flooding = asyncio.ensure_future(flood(client))
            await asyncio.gather(*(well_behaved(client, device) for device in devices))
            flooding_s = await flooding
        assert await producer.finish() == 0

    statuses = Counter((device == flooder, response.status_code) for device, response in answers)
    sent_by_the_others = WELL_BEHAVED * (SECONDS * RATE // 2)
    assert statuses[(False, 202)] == sent_by_the_others, statuses
    flooded = statuses[(True, 202)] + statuses[(True, 429)]
    assert flooded == SECONDS * RATE * 20, statuses
    # Its burst, then its rate while it flooded: far fewer than it sent.
    assert BURST <= statuses[(True, 202)] <= BURST + RATE * flooding_s + 1, (statuses, flooding_s)
    assert set(statuses) == {(False, 202), (True, 202), (True, 429)}, statuses
    refusal = next(response for device, response in answers if response.status_code == 429)
    assert refusal.json()["error"] == "rate_limited"
    assert int(refusal.headers["retry-after"]) >= 1
    assert refusal.headers["ratelimit-policy"] == f'"device";q={BURST};w=1'
    assert refusal.headers["ratelimit"].startswith('"device";r=0;t=')
    accepted = next(response for device, response in answers if response.status_code == 202)
    assert accepted.headers["ratelimit-policy"] == f'"device";q={BURST};w=1'

    # The topic holds every accepted event once and nothing refused.
    records = await read_all(kafka_bootstrap, topic, PARTITIONS, "read_uncommitted")
    stored = Counter((r.partition, r.offset) for r in records)
    delivered = [_coordinates(response) for _, response in answers if response.status_code == 202]
    assert sorted(stored) == sorted(delivered)
    by_device = Counter(orjson.loads(r.value)["deviceId"] for r in records)
    expected = Counter(device for device, response in answers if response.status_code == 202)
    assert by_device == expected


def _coordinates(response: httpx.Response) -> tuple[int, int]:
    body: dict[str, Any] = response.json()
    return body["partition"], body["offset"]
