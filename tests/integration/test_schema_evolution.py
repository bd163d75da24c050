"""Compatibility decided in CI, before a deploy, by a real registry (Apicurio's Confluent-compatible
API): every committed version of each event's schema, in order, then the code's; a breaking change
refused in one line naming the subject, the level and the registry's reason; the producer setting
the level and adding its version beside an older one."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

import httpx2 as httpx
import pytest

from devtools.schemas import EVENTS, READERS_LEVEL, Event, check_history
from shared.kafka.registry import RegistryRefusedError, SchemaRegistry
from shared.runtime.settings import Settings, load_settings
from tests.support.kafka import TopicFactory
from tests.support.samples import event_body
from tests.support.servers import producer_client, running_consumer
from tests.support.settings import settings_for
from tests.support.topics import read_topic

LEVEL = load_settings().schema_registry.compatibility


@pytest.fixture
async def registry(schema_registry_url: str) -> AsyncIterator[SchemaRegistry]:
    settings = load_settings().schema_registry.model_copy(update={"url": schema_registry_url})
    client = SchemaRegistry(settings)
    yield client
    await client.close()


def _subject(event: Event) -> str:
    """A subject of the event's own in this test run (the registry outlives the test)."""
    return f"{uuid4().hex[:8]}-{event.subject(load_settings())}"


def test_the_services_set_a_level_that_keeps_every_version_readable() -> None:
    assert LEVEL == "BACKWARD_TRANSITIVE"


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.name)
async def test_every_committed_version_then_the_codes_is_accepted(
    registry: SchemaRegistry, schema_registry_url: str, event: Event
) -> None:
    subject = _subject(event)
    versions = [*event.versions(), event.schema()]
    try:
        await check_history(registry, subject, versions, LEVEL)
    except RegistryRefusedError as error:
        pytest.fail(str(error), pytrace=False)
    async with httpx.AsyncClient(base_url=schema_registry_url) as client:
        held = (await client.get(f"/subjects/{subject}/versions")).json()
        level = (await client.get(f"/config/{subject}")).json()["compatibilityLevel"]
    # The code's schema is the latest committed version: found, not added.
    assert (len(held), level) == (len(event.versions()), LEVEL)


def _without_required(schema: dict[str, Any]) -> None:
    schema["required"].remove("maxHeartRate")
    del schema["properties"]["maxHeartRate"]


def _narrowed(schema: dict[str, Any]) -> None:
    schema["properties"]["maxHeartRate"]["maximum"] -= 10


def _widened(schema: dict[str, Any]) -> None:
    schema["properties"]["maxHeartRate"]["maximum"] += 10


def _retyped(schema: dict[str, Any]) -> None:
    schema["properties"]["restingHeartRate"] = {"type": "string"}


@pytest.mark.parametrize(
    ("change", "level", "cause"),
    [
        (_without_required, LEVEL, "OBJECT_TYPE_PROPERTY_SCHEMAS_NARROWED"),
        (_narrowed, LEVEL, "NUMBER_TYPE_MAXIMUM_DECREASED"),
        (_retyped, LEVEL, "TYPE"),
        # Older readers refuse a heart rate over their maximum.
        (_widened, READERS_LEVEL, "NUMBER_TYPE_MAXIMUM"),
    ],
    ids=["a required field removed", "a type narrowed", "a type changed", "a type widened"],
)
async def test_a_breaking_change_is_refused_in_one_line_naming_subject_level_and_reason(
    registry: SchemaRegistry,
    change: Callable[[dict[str, Any]], None],
    level: str,
    cause: str,
) -> None:
    biometrics = EVENTS[0]
    subject = _subject(biometrics)
    broken = copy.deepcopy(biometrics.schema())
    change(broken)
    with pytest.raises(RegistryRefusedError) as refused:
        await check_history(registry, subject, [*biometrics.versions(), broken], LEVEL)
    line = str(refused.value)
    print(line)
    assert "\n" not in line
    assert f"of {subject}" in line and f" at {level}: HTTP 409" in line and cause in line


async def test_the_producer_sets_the_level_and_adds_its_version_beside_the_older_one(
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    group_id: str,
    registry: SchemaRegistry,
    schema_registry_url: str,
) -> None:
    topic = await topic_factory(1)
    settings: Settings = settings_for(
        kafka_bootstrap,
        topic,
        group_id,
        schema_registry={"url": schema_registry_url, "timeout_s": 2.0},
    )
    subject = f"{settings.kafka.topic}-value"
    first, *_ = EVENTS[0].versions()
    older_id = await registry.register(subject, first)  # what a deployment of version 1 did
    old_client, new_client = event_body(), event_body(restingHeartRate=48)
    async with producer_client(settings) as client:
        for body in (old_client, new_client):
            answer = await client.post("/biometrics", json=body)
            assert answer.status_code == 202, answer.text
    async with httpx.AsyncClient(base_url=schema_registry_url) as client:
        versions = (await client.get(f"/subjects/{subject}/versions")).json()
        level = (await client.get(f"/config/{subject}")).json()["compatibilityLevel"]
        latest = (await client.get(f"/subjects/{subject}/versions/latest")).json()
    assert (len(versions), level) == (2, LEVEL)
    assert latest["id"] != older_id
    records = await read_topic(kafka_bootstrap, settings.kafka.topic, 2)
    assert [r.value[1:5] for r in records] == [latest["id"].to_bytes(4, "big")] * 2
    # An old client's event is the record it always was; the new field reaches the consumer.
    assert b"restingHeartRate" not in records[0].value
    async with running_consumer(settings) as lines:
        logged = [line["event"] for line in await lines.wait_for_events(2)]
    assert [event["deviceId"] for event in logged] == [
        old_client["deviceId"],
        new_client["deviceId"],
    ]
    assert "restingHeartRate" not in logged[0] and logged[1]["restingHeartRate"] == 48
