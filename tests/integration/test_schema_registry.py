"""The Schema Registry on, against a real registry (Apicurio's Confluent-compatible API) and a real
broker: values framed in Confluent's wire format, read by Confluent's own JSONDeserializer; what
its JSONSerializer writes, logged by our consumer; an unknown id dead-lettered; a registry down
at start-up waited for; an incompatible schema refused."""

from __future__ import annotations

import logging
from collections import Counter

import httpx2 as httpx
import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from devtools.local_registry import LocalRegistry
from devtools.processes import free_port
from producer_service.publisher import KafkaPublisher
from shared.contracts.schema import json_schema, parse_event
from shared.kafka.registry import RegistryRefusedError, SchemaRegistry, frame_prefix, split_frame
from shared.runtime.settings import Settings
from tests.support.kafka import TopicFactory
from tests.support.polling import eventually, until_status
from tests.support.samples import event_body
from tests.support.servers import producer_client, running_consumer
from tests.support.settings import settings_for, with_changes
from tests.support.topics import (
    committed_offsets,
    fill_topic,
    read_all,
    read_topic,
    wait_until_committed,
)
from tests.support.zones import (
    expected_zone_records,
    run_zones_until_committed,
    zone_bodies,
    zone_settings,
)


async def _settings(
    bootstrap: str,
    topic_factory: TopicFactory,
    group_id: str,
    registry_url: str,
) -> Settings:
    """settings_for a fresh one-partition topic, with the Schema Registry at `registry_url`."""
    registry = {"url": registry_url, "timeout_s": 2.0}
    topic = await topic_factory(1)
    return settings_for(bootstrap, topic, group_id, schema_registry=registry)


@pytest.fixture
async def registry_settings(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str, schema_registry_url: str
) -> Settings:
    """Settings on a fresh one-partition topic, with the session's Schema Registry."""
    return await _settings(kafka_bootstrap, topic_factory, group_id, schema_registry_url)


@pytest.fixture
async def unserved_registry(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> tuple[int, Settings]:
    """A free port, and settings whose Schema Registry is a LocalRegistry to be started on it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    return port, await _settings(kafka_bootstrap, topic_factory, group_id, url)


async def test_our_values_are_framed_and_read_by_confluents_json_deserializer(
    kafka_bootstrap: str, schema_registry_url: str, registry_settings: Settings
) -> None:
    settings = registry_settings
    topic = settings.kafka.topic
    body = event_body()
    async with producer_client(settings) as client:
        response = await client.post("/biometrics", json=body)
        assert response.status_code == 202, response.text
    [record] = await read_topic(kafka_bootstrap, topic, 1)
    schema_id, payload = split_frame(record.value)
    assert record.value[:1] == b"\x00" and schema_id is not None
    with SchemaRegistryClient({"url": schema_registry_url}) as registered:
        assert registered.get_latest_version(f"{topic}-value").schema_id == schema_id
        deserialize = JSONDeserializer(None, schema_registry_client=registered)
        read = deserialize(record.value, SerializationContext(topic, MessageField.VALUE))
    assert read == orjson.loads(payload)
    assert parse_event(orjson.dumps(read)) == parse_event(orjson.dumps(body))


async def test_what_confluents_json_serializer_writes_is_logged_by_our_consumer(
    kafka_bootstrap: str, group_id: str, schema_registry_url: str, registry_settings: Settings
) -> None:
    settings = registry_settings
    topic = settings.kafka.topic
    body = event_body()
    with SchemaRegistryClient({"url": schema_registry_url}) as registry:
        serialize = JSONSerializer(orjson.dumps(json_schema()).decode(), registry)
        value = serialize(body, SerializationContext(topic, MessageField.VALUE))
    assert value is not None and value[:1] == b"\x00"
    await fill_topic(kafka_bootstrap, topic, [(body["deviceId"].encode(), value)])
    async with running_consumer(settings) as lines:
        [line] = await lines.wait_for_events(1)
    assert line["event"] == body


async def test_a_framed_value_with_an_id_the_registry_lacks_is_a_dead_letter(
    kafka_bootstrap: str, group_id: str, schema_registry_url: str, registry_settings: Settings
) -> None:
    settings = registry_settings
    topic = settings.kafka.topic
    unknown = frame_prefix(987_654) + orjson.dumps(event_body())
    await fill_topic(kafka_bootstrap, topic, [(b"k", unknown), (b"k", orjson.dumps(event_body()))])
    async with running_consumer(settings) as lines:
        await lines.wait_for_events(1)  # the plain one
        [letter] = await read_topic(kafka_bootstrap, settings.kafka.dead_letter_topic, 1)
    assert letter.value == unknown
    assert dict(letter.headers)["dlq.error"] == b"schema id 987654 is not in the schema registry"


async def test_a_registry_down_at_start_up_is_waited_for_with_503_meanwhile(
    kafka_bootstrap: str, unserved_registry: tuple[int, Settings]
) -> None:
    port, settings = unserved_registry
    settings = with_changes(settings, kafka={"connect_retry_s": 0.5})
    async with producer_client(settings) as client:
        assert (await client.get("/readyz")).status_code == 503
        refused = await client.post("/biometrics", json=event_body())
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        with LocalRegistry(port=port):
            await until_status(client, "/readyz", 200, timeout_s=60)
            accepted = await client.post("/biometrics", json=event_body())
            assert accepted.status_code == 202, accepted.text
    [record] = await read_topic(kafka_bootstrap, settings.kafka.topic, 1)
    assert split_frame(record.value)[0] is not None


async def test_an_incompatible_schema_under_the_subject_fails_start_up_naming_it(
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    group_id: str,
    schema_registry_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = await _settings(kafka_bootstrap, topic_factory, group_id, schema_registry_url)
    subject = f"{settings.kafka.topic}-value"
    older = {
        "type": "object",
        "properties": {"legacy": {"type": "string"}},
        "required": ["legacy"],
        "additionalProperties": False,
    }
    async with httpx.AsyncClient(base_url=schema_registry_url) as registry:
        config = await registry.put(f"/config/{subject}", json={"compatibility": "BACKWARD"})
        assert config.status_code == 200, config.text
        body = {"schemaType": "JSON", "schema": orjson.dumps(older).decode()}
        assert (await registry.post(f"/subjects/{subject}/versions", json=body)).status_code == 200
    with (
        caplog.at_level(logging.ERROR),
        pytest.raises(RegistryRefusedError, match=f"refused registering the schema of {subject}"),
    ):
        async with KafkaPublisher(settings):
            pass
    [line] = [r.getMessage() for r in caplog.records if r.name == "producer_service.publisher"]
    level = settings.schema_registry.compatibility
    assert line.startswith(
        f"schema registry refused registering the schema of {subject} at {level}: HTTP 409"
    )


async def test_the_zone_processor_reads_framed_input_and_writes_framed_zone_events(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str, schema_registry_url: str
) -> None:
    topic, zones_topic, dlq = [await topic_factory(1) for _ in range(3)]
    settings = zone_settings(
        kafka_bootstrap,
        topic,
        group_id,
        zones_topic,
        dlq,
        schema_registry={"url": schema_registry_url, "timeout_s": 2.0},
    )
    topic_name, zones_name = settings.kafka.topic, settings.zones.topic
    registry = SchemaRegistry(settings.schema_registry)
    schema_id = await registry.register(f"{topic_name}-value", json_schema())
    await registry.close()
    inputs = zone_bodies(5, seed=21)
    framed = [(key, frame_prefix(schema_id) + (value or b"")) for key, value in inputs]
    unknown = (b"k", frame_prefix(987_655) + (inputs[0][1] or b""))
    await fill_topic(kafka_bootstrap, topic_name, [*framed, unknown])
    await run_zones_until_committed(settings, {0: len(framed) + 1})
    records = await read_all(kafka_bootstrap, zones_name, 1, "read_committed")
    with SchemaRegistryClient({"url": schema_registry_url}) as client:
        zone_id = client.get_latest_version(f"{zones_name}-value").schema_id
        deserialize = JSONDeserializer(None, schema_registry_client=client)
        context = SerializationContext(zones_name, MessageField.VALUE)
        read = Counter(
            (record.key, orjson.dumps(deserialize(record.value, context))) for record in records
        )
    assert {split_frame(record.value)[0] for record in records} == {zone_id}
    expected = Counter(
        (key, orjson.dumps(orjson.loads(value))) for key, value in expected_zone_records(inputs)
    )
    assert read == expected
    [letter] = await read_all(
        kafka_bootstrap, settings.kafka.dead_letter_topic, 1, "read_committed"
    )
    assert dict(letter.headers)["dlq.error"] == b"schema id 987655 is not in the schema registry"


async def test_the_consumer_waits_for_an_unreachable_registry_and_commits_nothing_meanwhile(
    kafka_bootstrap: str,
    group_id: str,
    unserved_registry: tuple[int, Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, settings = unserved_registry
    settings = with_changes(settings, consumer={"retry_backoff_ms": 200})
    topic = settings.kafka.topic
    framed = frame_prefix(1) + orjson.dumps(event_body())
    await fill_topic(kafka_bootstrap, topic, [(b"k", framed)])
    caplog.set_level(logging.WARNING, logger="shared.kafka.records")
    async with running_consumer(settings) as lines:
        # The registry is down: the record can be neither logged nor set aside meanwhile, however
        # often the consumer has asked the registry for its schema.
        await eventually(
            lambda: [r for r in caplog.records if r.name == "shared.kafka.records"],
            lambda warnings: len(warnings) >= 3,
            timeout_s=30,
            awaiting="the consumer's third warning that the registry is not reachable",
        )
        assert lines.lines == [] and await committed_offsets(kafka_bootstrap, group_id) == {}
        with LocalRegistry(port=port):  # up, and empty: id 1 is unknown, so a dead letter
            [letter] = await read_topic(kafka_bootstrap, settings.kafka.dead_letter_topic, 1)
            await wait_until_committed(kafka_bootstrap, group_id, {0: 1}, timeout_s=30)
    assert dict(letter.headers)["dlq.error"] == b"schema id 1 is not in the schema registry"
