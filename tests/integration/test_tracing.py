"""Trace context through a real broker: from the HTTP request into every record's headers, the
consumer's event lines, dead letters and zone events; with tracing on, one trace of spans from
the request to each consumer; with the console exporter, spans out of the real processes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from consumer_service import run_consumer
from shared.runtime.settings import Settings
from shared.runtime.tracing import parse_traceparent
from tests.support.fakes import LineCollector
from tests.support.kafka import TopicFactory
from tests.support.polling import eventually
from tests.support.processes import through_the_pair
from tests.support.samples import event_body
from tests.support.servers import serving_producer
from tests.support.settings import service_env, settings_for
from tests.support.topics import read_all, read_topic
from zones_service.service import run_zones

CLIENT_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CLIENT_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
POISON_PARENT = "00-11111111111111111111111111111111-2222222222222222-01"


def _zoned_body() -> dict[str, Any]:
    """An event with one reading at the wearer's maximum: one zone event (the top zone)."""
    body = event_body(readings=1)
    body["heartRates"][0]["value"] = body["maxHeartRate"]
    return body


def _trace(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {
        name: value.decode()
        for name, value in record.headers
        if name in ("traceparent", "x-request-id")
    }


async def _settings(bootstrap: str, topic_factory: TopicFactory, group_id: str) -> Settings:
    topic, dlq, zones_topic = await topic_factory(1), await topic_factory(1), await topic_factory(1)
    return settings_for(
        bootstrap,
        topic,
        group_id,
        partitions=1,
        kafka={"dead_letter_topic": dlq},
        zones={"topic": zones_topic, "group_id": f"{group_id}-zones"},
    )


@asynccontextmanager
async def _pipeline(
    settings: Settings, provider: TracerProvider | None
) -> AsyncIterator[tuple[httpx.AsyncClient, LineCollector]]:
    """Producer, consumer and zone processor in this process, sharing `provider`."""
    stop = asyncio.Event()
    collector = LineCollector()
    async with serving_producer(settings, tracer_provider=provider) as (url, _):
        consumer = asyncio.create_task(run_consumer(settings, stop, collector, provider))
        zones = asyncio.create_task(run_zones(settings, stop, provider))
        try:
            async with httpx.AsyncClient(base_url=url) as client:
                yield client, collector
        finally:
            stop.set()
            async with asyncio.timeout(30):
                await asyncio.gather(consumer, zones)


async def _post_and_poison(client: httpx.AsyncClient, settings: Settings) -> None:
    """POST one event with the client's traceparent, a batch of two without one, and write one
    record no consumer can read, with trace headers of its own."""
    response = await client.post(
        "/biometrics",
        json=_zoned_body(),
        headers={"traceparent": CLIENT_PARENT, "x-request-id": "with-parent"},
    )
    assert response.status_code == 202, response.text
    response = await client.post(
        "/biometrics/batch",
        json=[_zoned_body(), _zoned_body()],
        headers={"x-request-id": "without-parent"},
    )
    assert response.status_code == 202, response.text
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await producer.start()
    try:
        headers = [("traceparent", POISON_PARENT.encode()), ("x-request-id", b"poison")]
        await producer.send_and_wait(settings.kafka.topic, b"not json", b"d", headers=headers)
    finally:
        await producer.stop()


async def _read(settings: Settings) -> tuple[list[Any], list[Any], list[Any]]:
    """The events, dead letters (the consumer's and the zone processor's) and zone events."""
    bootstrap = settings.kafka.bootstrap_servers
    events = await read_topic(bootstrap, settings.kafka.topic, 4)
    letters = await read_topic(bootstrap, settings.kafka.dead_letter_topic, 2)
    zones = await eventually(  # each zone event is committed in a transaction of its own
        lambda: read_all(bootstrap, settings.zones.topic, 1, "read_committed"),
        lambda records: len(records) == 3,
        timeout_s=30,
        interval_s=0.1,
        awaiting="3 zone events committed",
    )
    return events, letters, zones


async def test_the_request_id_and_traceparent_reach_every_record_line_dead_letter_and_zone_event(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    settings = await _settings(kafka_bootstrap, topic_factory, group_id)
    async with _pipeline(settings, None) as (client, collector):
        await _post_and_poison(client, settings)
        lines = await collector.wait_for_events(3)
        events, letters, zones = await _read(settings)
    traces = [_trace(record) for record in events]
    with_parent, batch_first, batch_second, poison = traces
    assert with_parent == {"traceparent": CLIENT_PARENT, "x-request-id": "with-parent"}
    # A trace started by the producer, one for the request: both its records carry it.
    started = batch_first["traceparent"]
    assert parse_traceparent(started.encode()) == started.encode() and started.endswith("-00")
    assert batch_first == batch_second == {"traceparent": started, "x-request-id": "without-parent"}
    assert poison == {"traceparent": POISON_PARENT, "x-request-id": "poison"}
    logged = [
        {"traceparent": line["traceparent"], "x-request-id": line["request_id"]} for line in lines
    ]
    assert logged == traces[:3]
    assert [_trace(letter) for letter in letters] == [poison, poison]
    assert sorted(orjson.dumps(_trace(zone)) for zone in zones) == sorted(
        orjson.dumps(trace) for trace in traces[:3]
    )
    print(
        f"records={len(events)} lines={len(lines)} dead letters={len(letters)} zones={len(zones)}"
    )


async def test_with_tracing_on_one_trace_runs_from_the_request_to_every_consumer_of_it(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    settings = await _settings(kafka_bootstrap, topic_factory, group_id)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        async with _pipeline(settings, provider) as (client, collector):
            await _post_and_poison(client, settings)
            lines = await collector.wait_for_events(3)
            events, _, zones = await _read(settings)
    finally:
        provider.shutdown()
    spans = exporter.get_finished_spans()
    [send] = _named(spans, f"send {settings.kafka.topic}", CLIENT_TRACE_ID)
    [server] = _named(spans, "POST /biometrics", CLIENT_TRACE_ID)
    assert server.parent is not None and server.parent.span_id == 0xB7AD6B7169203331
    assert send.parent is not None and send.parent.span_id == server.context.span_id
    # The record carries the send span; the consumer's and the zone processor's spans hang off it.
    sent = f"00-{CLIENT_TRACE_ID:032x}-{send.context.span_id:016x}-01"
    assert _trace(events[0])["traceparent"] == sent
    assert lines[0]["traceparent"] == sent
    processed = _named(spans, f"process {settings.kafka.topic}", CLIENT_TRACE_ID)
    assert len(processed) == 2  # the consumer's and the zone processor's
    assert all(span.parent is not None and span.parent.span_id == send.context.span_id
               for span in processed)  # fmt: skip
    groups = {
        span.attributes["messaging.consumer.group.name"]: span
        for span in processed
        if span.attributes
    }
    zone_span = groups[settings.zones.group_id]
    [zone] = [zone for zone in zones if _trace(zone)["x-request-id"] == "with-parent"]
    assert (
        _trace(zone)["traceparent"]
        == f"00-{CLIENT_TRACE_ID:032x}-{zone_span.context.span_id:016x}-01"
    )
    failed = [
        span
        for span in spans
        if span.status.description and "Invalid JSON" in span.status.description
    ]
    assert len(failed) == 2  # the poison record, in the consumer and in the zone processor
    print(f"spans={len(spans)} in the client's trace: {len(_named(spans, None, CLIENT_TRACE_ID))}")


def _named(spans: Sequence[ReadableSpan], name: str | None, trace_id: int) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if span.context.trace_id == trace_id and (name is None or span.name == name)
    ]


async def test_the_services_export_spans_with_the_console_exporter_and_flush_them_at_exit(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic = await topic_factory()
    env = service_env(kafka_bootstrap, topic, group_id, tracing__exporter="console")
    [line], producer, consumer = await through_the_pair(env, [event_body()])
    trace_id = line["traceparent"].split("-")[1]
    producer_spans = b"".join(producer.other_output).decode()
    consumer_spans = b"".join(consumer.other_output).decode()
    assert re.search(r'"name": "POST /biometrics"', producer_spans), producer_spans[-2000:]
    assert f'"trace_id": "0x{trace_id}"' in producer_spans
    assert f'"name": "process {topic}"' in consumer_spans, consumer_spans[-2000:]
    assert f'"trace_id": "0x{trace_id}"' in consumer_spans
