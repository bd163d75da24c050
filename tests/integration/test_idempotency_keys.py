"""A device's retry with its Idempotency-Key, against the real broker and the real processes: the
same request sent twice to one producer, one after the other and at once, is one record, answered
with the same 202; the consumer's line shows the key."""

from __future__ import annotations

import asyncio
import uuid

import httpx2 as httpx
import orjson

from consumer_service import EVENT_CONSUMED
from tests.support.kafka import TopicFactory
from tests.support.processes import service_process
from tests.support.samples import event_body
from tests.support.settings import service_env
from tests.support.topics import read_all

PARTITIONS = 3


async def test_the_same_request_twice_one_after_the_other_and_at_once_is_one_record(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(PARTITIONS)
    env = service_env(kafka_bootstrap, topic, f"test-group-{uuid.uuid4().hex}")
    single, batch = event_body(), [event_body(), event_body()]
    async with (
        service_process("producer_service", env) as producer,
        service_process("consumer_service", env) as consumer,
    ):
        url = await producer.url()
        await consumer.ready()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:

            async def post(path: str, body: object, key: str) -> httpx.Response:
                return await client.post(path, json=body, headers={"Idempotency-Key": key})

            sequential = [await post("/biometrics", single, "seq-1") for _ in range(2)]
            concurrent = await asyncio.gather(
                *(post("/biometrics/batch", batch, "conc-1") for _ in range(4))
            )
        lines = await consumer.wait_for(lambda line: line["message"] == EVENT_CONSUMED, 3)
        codes = await asyncio.gather(producer.finish(), consumer.finish())
    assert codes == [0, 0]
    for answers in (sequential, concurrent):
        assert {answer.status_code for answer in answers} == {202}
        assert len({answer.content for answer in answers}) == 1
        assert (
            sum("idempotent-replayed" in answer.headers for answer in answers) == len(answers) - 1
        )

    records = await read_all(kafka_bootstrap, topic, PARTITIONS, "read_uncommitted")
    assert sorted(dict(r.headers)["idempotency-key"] for r in records) == [
        b"conc-1#0",
        b"conc-1#1",
        b"seq-1",
    ]
    delivered = [orjson.loads(sequential[0].content), *concurrent[0].json()["records"]]
    assert sorted((d["partition"], d["offset"]) for d in delivered) == sorted(
        (r.partition, r.offset) for r in records
    )
    assert sorted(line["idempotency_key"] for line in lines) == ["conc-1#0", "conc-1#1", "seq-1"]
    assert len(consumer.events()) == 3
