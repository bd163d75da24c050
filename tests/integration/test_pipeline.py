"""The pipeline against a real Apache Kafka broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httpx2 as httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from producer_service.publisher import Delivery, EventKeys, Events, KafkaPublisher
from shared.contracts.schema import parse_event
from shared.kafka.headers import RecordHeaders
from shared.runtime.settings import Settings
from tests.support.kafka import TopicFactory
from tests.support.samples import event_body
from tests.support.servers import producer_client, running_consumer, serving_producer
from tests.support.settings import Changes, settings_for
from tests.support.topics import committed_offsets, read_topic


async def _settings(
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    group_id: str,
    partitions: int = 3,
    **sections: Changes,
) -> Settings:
    """settings_for a fresh topic of `partitions`."""
    topic = await topic_factory(partitions)
    return settings_for(kafka_bootstrap, topic, group_id, partitions, **sections)


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str) -> Settings:
    """The default settings, on a fresh topic of three partitions."""
    return await _settings(kafka_bootstrap, topic_factory, group_id)


async def test_a_posted_event_is_in_the_topic_keyed_by_device(
    kafka_bootstrap: str, settings: Settings
) -> None:
    body = event_body()
    async with producer_client(settings) as client:
        response = await client.post("/biometrics", json=body)
    assert response.status_code == 202, response.text
    answer = response.json()
    [record] = await read_topic(kafka_bootstrap, settings.kafka.topic, 1)
    assert record.key == body["deviceId"].encode()
    # The value is the validated event in its canonical encoding (UTC written as Z).
    assert parse_event(record.value) == parse_event(orjson.dumps(body))
    assert (answer["topic"], answer["partition"], answer["offset"]) == (
        settings.kafka.topic,
        record.partition,
        record.offset,
    )


async def test_a_batch_is_produced_whole_with_each_records_coordinates(
    kafka_bootstrap: str, settings: Settings
) -> None:
    bodies = [event_body() for _ in range(25)]
    async with producer_client(settings) as client:
        response = await client.post("/biometrics/batch", json=bodies)
        scrape = (await client.get("/metrics")).text
    assert response.status_code == 202, response.text
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
    }
    assert samples["biometrics_records_produced_total"] == len(bodies)
    assert samples["biometrics_bytes_produced_total"] > len(bodies) * 100
    # Latency is observed once per record batch: here one batch per partition the records took.
    partitions = {record["partition"] for record in response.json()["records"]}
    assert samples["biometrics_produce_latency_seconds_count"] == len(partitions)
    assert samples["biometrics_records_in_flight"] == 0
    coordinates = {(r["partition"], r["offset"]) for r in response.json()["records"]}
    records = await read_topic(kafka_bootstrap, settings.kafka.topic, len(bodies))
    assert {(r.partition, r.offset) for r in records} == coordinates
    assert sorted(r.key for r in records) == sorted(b["deviceId"].encode() for b in bodies)


async def test_each_devices_events_keep_their_order_across_partitions(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    settings = await _settings(kafka_bootstrap, topic_factory, group_id, partitions=6)
    devices = [event_body()["deviceId"] for _ in range(12)]
    per_device = 15

    async def post_in_order(client: httpx.AsyncClient, device: str) -> None:
        for sequence in range(per_device):
            body = event_body(device, readings=1)
            body["stepCounts"][0]["value"] = sequence
            response = await client.post("/biometrics", json=body)
            assert response.status_code == 202, response.text

    async with producer_client(settings) as client:
        await asyncio.gather(*(post_in_order(client, device) for device in devices))
    records = await read_topic(kafka_bootstrap, settings.kafka.topic, len(devices) * per_device)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    sequences: dict[bytes, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        partitions[record.key].add(record.partition)
        sequences[record.key].append(orjson.loads(record.value)["stepCounts"][0]["value"])
    assert len({p for ps in partitions.values() for p in ps}) > 1, "the devices used one partition"
    assert all(len(ps) == 1 for ps in partitions.values())
    assert all(seq == list(range(per_device)) for seq in sequences.values())


async def test_rejected_requests_produce_nothing(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    settings = await _settings(kafka_bootstrap, topic_factory, group_id, partitions=1)
    json_header = {"content-type": "application/json"}
    marker = event_body()
    async with producer_client(settings) as client:
        rejected = [
            await client.post("/biometrics", content=b"{", headers=json_header),
            await client.post("/biometrics", json=event_body(maxHeartRate=5)),
            await client.post("/biometrics", content=orjson.dumps(event_body())),
            await client.post("/biometrics/batch", json=[event_body(), {"deviceId": "x"}]),
            await client.post(
                "/biometrics",
                content=b" " * (settings.http.max_body_bytes + 1),
                headers=json_header,
            ),
        ]
        accepted = await client.post("/biometrics", json=marker)
    assert [r.status_code for r in rejected] == [400, 422, 415, 422, 413]
    assert accepted.status_code == 202
    # The marker was posted last on a one-partition topic: anything rejected would precede it.
    records = await read_topic(kafka_bootstrap, settings.kafka.topic, 1)
    assert [r.key for r in records] == [marker["deviceId"].encode()]
    assert records[0].offset == 0


async def test_the_consumer_logs_each_event_once_and_commits(
    kafka_bootstrap: str, group_id: str, settings: Settings
) -> None:
    bodies = [event_body() for _ in range(30)]
    async with producer_client(settings) as client:
        response = await client.post("/biometrics/batch", json=bodies)
        assert response.status_code == 202
    async with running_consumer(settings) as logs:
        events = await logs.wait_for_events(len(bodies))
    assert sorted(e["key"] for e in events) == sorted(b["deviceId"] for b in bodies)
    assert len({(e["partition"], e["offset"]) for e in events}) == len(bodies)
    offsets = await committed_offsets(kafka_bootstrap, group_id)
    assert sum(offsets.values()) == len(bodies)


async def test_a_restarted_consumer_resumes_from_its_committed_offset(
    settings: Settings,
) -> None:
    first, second = [event_body() for _ in range(8)], [event_body() for _ in range(5)]
    async with producer_client(settings) as client:
        assert (await client.post("/biometrics/batch", json=first)).status_code == 202
        async with running_consumer(settings) as logs:
            await logs.wait_for_events(len(first))
        assert (await client.post("/biometrics/batch", json=second)).status_code == 202
    async with running_consumer(settings) as logs:
        events = await logs.wait_for_events(len(second))
    assert sorted(e["key"] for e in events) == sorted(b["deviceId"] for b in second)


class _CountingPublisher(KafkaPublisher):
    """KafkaPublisher that tells the test once `expected` requests are waiting on the broker."""

    def __init__(self, settings: Settings, expected: int) -> None:
        super().__init__(settings)
        self.all_in_flight = asyncio.Event()
        self._remaining = expected

    async def publish(
        self, events: Events, headers: RecordHeaders = (), keys: EventKeys = None
    ) -> list[Delivery]:
        self._remaining -= 1
        if self._remaining == 0:
            self.all_in_flight.set()
        return await super().publish(events, headers, keys)


async def test_a_producer_stopped_mid_load_delivers_every_accepted_request(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    # A long linger keeps the records in the client's buffer when shutdown begins.
    producer = {"linger_ms": 500}
    settings = await _settings(kafka_bootstrap, topic_factory, group_id, producer=producer)
    requests = 100
    publisher = _CountingPublisher(settings, requests)
    bodies = [event_body(readings=1) for _ in range(requests)]
    limits = httpx.Limits(max_connections=requests)
    async with (
        serving_producer(settings, lambda _: publisher) as (url, server),
        httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client,
    ):
        posts = [asyncio.create_task(client.post("/biometrics", json=b)) for b in bodies]
        async with asyncio.timeout(20):
            await publisher.all_in_flight.wait()
        server.should_exit = True  # what SIGTERM does
        responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [202] * requests
    records = await read_topic(kafka_bootstrap, settings.kafka.topic, requests)
    assert sorted(r.key for r in records) == sorted(b["deviceId"].encode() for b in bodies)
