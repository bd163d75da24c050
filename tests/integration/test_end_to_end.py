"""Both services as real processes, as they are deployed: HTTP in, JSON lines out."""

from __future__ import annotations

import asyncio

import httpx2 as httpx

from consumer_service import CONSUMER_STARTED, EVENT_CONSUMED
from tests.integration.conftest import TopicFactory
from tests.integration.harness import service_env, service_process
from tests.support import event_body


async def test_posted_events_appear_in_the_consumer_output_and_both_stop_cleanly(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    env = service_env(kafka_bootstrap, await topic_factory(3), group_id)
    bodies = [event_body() for _ in range(5)]
    async with (
        service_process("producer_service", env) as producer,
        service_process("consumer_service", env) as consumer,
    ):
        url = await producer.url()
        await consumer.wait_for_message(CONSUMER_STARTED)
        async with httpx.AsyncClient(base_url=url) as client:
            for body in bodies:
                response = await client.post("/biometrics", json=body)
                assert response.status_code == 202, response.text
        events = await consumer.wait_for(lambda line: line["message"] == EVENT_CONSUMED, 5)
        assert {e["event"]["deviceId"] for e in events} == {b["deviceId"] for b in bodies}
        codes = await asyncio.gather(producer.finish(), consumer.finish())
    assert codes == [0, 0], (producer.lines[-5:], consumer.lines[-5:])
