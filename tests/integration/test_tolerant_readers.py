"""Tolerant readers, strict edge, against the real broker: records of a newer writer (fields this
version does not know, at the top and inside a reading; plain JSON, and framed by Confluent's own
JSONSerializer with the newer schema registered) are logged by the consumer with those fields kept
and turned into zone events by the zone processor by the unchanged rule; a record that breaks the
contract still goes to the dead-letter topic; the HTTP edge still refuses unknown fields."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import orjson
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from devtools.schemas import EVENTS
from shared.kafka.registry import SchemaRegistry
from tests.support.kafka import TopicFactory
from tests.support.samples import event_body
from tests.support.servers import producer_client, running_consumer
from tests.support.settings import settings_for, with_changes
from tests.support.topics import fill_topic, read_all, read_topic
from tests.support.zones import (
    expected_zone_records,
    run_zones_until_committed,
    zone_bodies,
    zone_settings,
)


def _newer(body: dict[str, Any]) -> dict[str, Any]:
    """`body` as a writer one version ahead sends it: blood-oxygen readings beside the heart
    rates, and a confidence on each heart-rate reading."""
    newer = copy.deepcopy(body)
    newer["bloodOxygen"] = [{"dateTime": r["dateTime"], "value": 97} for r in body["heartRates"]]
    for reading in newer["heartRates"]:
        reading["confidence"] = "high"
    return newer


def _newer_schema() -> dict[str, Any]:
    """The latest committed Biometrics schema with what _newer adds, as its writer would
    register it (optional fields, a closed content model)."""
    schema = copy.deepcopy(EVENTS[0].versions()[-1])
    reading = {
        "type": "object",
        "properties": {"dateTime": {"type": "string"}, "value": {"type": "integer"}},
        "required": ["dateTime", "value"],
        "additionalProperties": False,
    }
    schema["properties"]["bloodOxygen"] = {"type": "array", "items": reading}
    schema["definitions"]["HeartRate"]["properties"]["confidence"] = {"type": "string"}
    return schema


def _broken(body: dict[str, Any]) -> dict[str, Any]:
    broken = _newer(body)
    del broken["maxHeartRate"]
    return broken


async def test_the_consumer_logs_a_newer_writers_record_with_the_fields_it_does_not_know(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    settings = settings_for(kafka_bootstrap, await topic_factory(1), group_id, partitions=1)
    newer, broken = _newer(event_body()), _broken(event_body())
    records = [(b"k", orjson.dumps(newer)), (b"k", orjson.dumps(broken)), (b"k", b"{}")]
    await fill_topic(kafka_bootstrap, settings.kafka.topic, records)
    async with running_consumer(settings) as lines:
        [line] = await lines.wait_for_events(1)
        letters = await read_topic(kafka_bootstrap, settings.kafka.dead_letter_topic, 2)
    assert line["event"] == newer
    assert [letter.value for letter in letters] == [value for _, value in records[1:]]
    assert b"maxHeartRate: field required" in dict(letters[0].headers)["dlq.error"]


async def test_the_zone_processor_applies_the_rule_to_a_newer_writers_records(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic, dlq = [await topic_factory(1) for _ in range(3)]
    settings = zone_settings(kafka_bootstrap, topic, group_id, zones_topic, dlq)
    known = zone_bodies(6, seed=2112)
    newer = [(key, orjson.dumps(_newer(orjson.loads(value or b"")))) for key, value in known]
    broken = (b"k", orjson.dumps(_broken(event_body())))
    await fill_topic(kafka_bootstrap, topic, [*newer, broken])
    await run_zones_until_committed(settings, {0: len(newer) + 1})
    records = await read_all(kafka_bootstrap, zones_topic, 1, "read_committed")
    assert Counter((r.key, r.value) for r in records) == expected_zone_records(known)
    [letter] = await read_all(kafka_bootstrap, dlq, 1, "read_committed")
    assert letter.value == broken[1]


async def test_what_confluents_serializer_writes_with_a_newer_schema_is_read_by_both(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str, schema_registry_url: str
) -> None:
    topic, zones_topic, dlq = [await topic_factory(1) for _ in range(3)]
    registry = {"url": schema_registry_url, "timeout_s": 2.0}
    settings = zone_settings(
        kafka_bootstrap, topic, group_id, zones_topic, dlq, schema_registry=registry
    )
    subject = f"{topic}-value"
    client = SchemaRegistry(settings.schema_registry)
    level = settings.schema_registry.compatibility
    for version in EVENTS[0].versions():  # what the deployed producers registered
        await client.register(subject, version, level)
    await client.close()
    [(key, value)] = zone_bodies(1, seed=7)
    body = _newer(orjson.loads(value or b""))
    with SchemaRegistryClient({"url": schema_registry_url}) as confluent:
        serialize = JSONSerializer(orjson.dumps(_newer_schema()).decode(), confluent)
        framed = serialize(body, SerializationContext(topic, MessageField.VALUE))
    assert framed is not None and framed[:1] == b"\x00"
    await fill_topic(kafka_bootstrap, topic, [(key, framed)])
    consumer = with_changes(settings, consumer={"group_id": f"{group_id}-log"})
    async with running_consumer(consumer) as lines:
        [line] = await lines.wait_for_events(1)
    assert line["event"] == body
    await run_zones_until_committed(settings, {0: 1})
    zone_records = await read_all(kafka_bootstrap, zones_topic, 1, "read_committed")
    expected = expected_zone_records([(key, value)])
    assert len(zone_records) == sum(expected.values()) > 0


async def test_the_edge_still_refuses_what_a_newer_writer_would_send(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    settings = settings_for(kafka_bootstrap, await topic_factory(1), group_id, partitions=1)
    async with producer_client(settings) as client:
        refused = await client.post("/biometrics", json=_newer(event_body()))
    assert refused.status_code == 422, refused.text
    fields = {detail["path"] for detail in refused.json()["details"]}
    assert fields == {"bloodOxygen"} | {f"heartRates[{i}].confidence" for i in range(3)}
