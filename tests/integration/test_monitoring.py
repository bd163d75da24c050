"""The rules and the dashboard against a real Prometheus scraping the real producer, consumer and
zone processor on the test broker: every recording rule and dashboard query returns series, and
the alerts fire (and resolve) when the services do what they describe. The rules are the files of
deploy/prometheus with every `for` cut to seconds; the thresholds are the files' own."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx2 as httpx
import pytest

from devtools.processes import free_port
from tests.support.kafka import TopicFactory
from tests.support.monitoring import (
    dashboard_queries,
    prometheus_tool,
    recorded_names,
    shortened_rules,
)
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess, service_process
from tests.support.prometheus import PrometheusApi, running_prometheus
from tests.support.samples import event_body
from tests.support.settings import service_env
from tests.support.topics import fill_topic

# Each alert's `for` in the test: long enough that one late scrape does not fire an alert.
_HOLD = "3s"
# Deadlines only bound a wait; a loaded 2-core machine may need most of them.
_ALERT_TIMEOUT_S = 120
_SERIES_TIMEOUT_S = 120
# One device may send 2 events a second, 5 at once: the flood's device is refused at once.
_DEVICE_LIMITS = {"HTTP__DEVICE_RATE_PER_S": "2", "HTTP__DEVICE_BURST": "5"}
# The background's pace: 20 events a second, each from a device of its own.
_EVENT_PAUSE_S = 0.05
# The flood's pace: 100 requests a second from one device.
_FLOOD_PAUSE_S = 0.01


@dataclass
class Stack:
    """The three services, scraped by Prometheus; the consumer can be stopped and started."""

    prometheus: PrometheusApi
    producer_url: str
    bootstrap: str
    topic: str
    start_consumer: Callable[[], Awaitable[ServiceProcess]]
    consumer: ServiceProcess


@pytest.fixture
def prometheus_binary() -> Path:
    return prometheus_tool("prometheus")


@pytest.fixture
async def stack(
    prometheus_binary: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    group_id: str,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """Producer, consumer and zone processor on fresh topics and groups, each on a port of its
    own, and Prometheus scraping them with the rules; all stopped after the test."""
    topic, zones_topic = await topic_factory(1), await topic_factory(1)
    ports = {"producer": free_port(), "consumer": free_port(), "zones": free_port()}
    env = service_env(
        kafka_bootstrap,
        topic,
        group_id,
        KAFKA__TOPIC_PARTITIONS="1",
        HTTP__PORT=str(ports["producer"]),
        CONSUMER__PROBE_PORT=str(ports["consumer"]),
        ZONES__PROBE_PORT=str(ports["zones"]),
        ZONES__TOPIC=zones_topic,
        ZONES__GROUP_ID=f"zones-{uuid.uuid4().hex}",
        **_DEVICE_LIMITS,
    )
    async with contextlib.AsyncExitStack() as processes:

        async def start_consumer() -> ServiceProcess:
            consumer = await processes.enter_async_context(service_process("consumer_service", env))
            await consumer.ready()
            return consumer

        producer = await processes.enter_async_context(service_process("producer_service", env))
        zones = await processes.enter_async_context(service_process("zones_service", env))
        consumer = await start_consumer()
        url = await producer.url()
        await zones.until_metric("biometrics_zone_partitions_owned", 1)
        targets = {job: f"127.0.0.1:{port}" for job, port in ports.items()}
        rules = tmp_path / "rules"
        rules.mkdir()
        async with running_prometheus(
            prometheus_binary, tmp_path, targets, shortened_rules(rules, _HOLD)
        ) as prometheus:
            yield Stack(prometheus, url, kafka_bootstrap, topic, start_consumer, consumer)


@contextlib.asynccontextmanager
async def posting(
    url: str, device_id: str | None = None, pause_s: float = _EVENT_PAUSE_S
) -> AsyncIterator[None]:
    """POST events while the block runs: each from a new device, or all from `device_id`."""

    async def post() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while True:
                await client.post("/biometrics", json=event_body(device_id))
                # The load's pace, not a wait for anything.
                await asyncio.sleep(pause_s)

    task = asyncio.create_task(post())
    try:
        yield None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def firing(prometheus: PrometheusApi, alert: str, labels: str = "") -> dict[str, str]:
    """Wait until an alert named `alert` (its labels containing `labels`) is firing."""

    def fires(active: dict[str, str]) -> bool:
        return any(
            name.startswith(alert + "{") and labels in name and state == "firing"
            for name, state in active.items()
        )

    active: dict[str, str] = await eventually(
        prometheus.alerts, fires, timeout_s=_ALERT_TIMEOUT_S, awaiting=f"{alert} firing"
    )
    return active


async def resolved(prometheus: PrometheusApi, alert: str) -> dict[str, str]:
    """Wait until no alert named `alert` is pending or firing."""
    active: dict[str, str] = await eventually(
        prometheus.alerts,
        lambda active: not any(name.startswith(alert + "{") for name in active),
        timeout_s=_ALERT_TIMEOUT_S,
        awaiting=f"{alert} resolved",
    )
    return active


async def test_every_recording_rule_and_dashboard_query_evaluates_to_series(
    stack: Stack,
) -> None:
    prometheus = stack.prometheus
    queries = [*recorded_names(), *dashboard_queries()]
    async with posting(stack.producer_url):
        results = {}
        for query in queries:
            results[query] = await eventually(
                lambda query=query: prometheus.query(query),  # type: ignore[misc]
                timeout_s=_SERIES_TIMEOUT_S,
                awaiting=f"series of {query}",
            )
        rules = await eventually(
            prometheus.rules,
            lambda rules: all(rule.get("lastEvaluation", "").startswith("2") for rule in rules),
            timeout_s=_SERIES_TIMEOUT_S,
            awaiting="every rule evaluated",
        )
    assert all(results.values())
    unhealthy = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert unhealthy == []


async def test_a_consumer_stopped_while_events_arrive_fires_no_progress_and_restarted_resolves_it(
    stack: Stack,
) -> None:
    prometheus = stack.prometheus
    async with posting(stack.producer_url):
        await resolved(prometheus, "BiometricsConsumerNoProgress")
        assert await stack.consumer.finish() == 0
        await firing(prometheus, "BiometricsConsumerNoProgress")
        await stack.start_consumer()
        await resolved(prometheus, "BiometricsConsumerNoProgress")


async def test_a_poison_record_fires_the_dead_letter_alert_of_the_consumer_and_the_zones(
    stack: Stack,
) -> None:
    # Prometheus has the counters at 0 first: a counter first seen at 1 has no increase.
    await eventually(
        lambda: stack.prometheus.query("biometrics_records_dead_lettered_total"),
        lambda counters: len(counters) == 2,
        timeout_s=_SERIES_TIMEOUT_S,
        awaiting="the consumer's and the zone processor's dead-letter counters scraped",
    )
    await fill_topic(stack.bootstrap, stack.topic, [(b"poison", b"not json")])

    await firing(stack.prometheus, "BiometricsDeadLetters", "job=consumer")
    await firing(stack.prometheus, "BiometricsDeadLetters", "job=zones")


async def test_a_flood_from_one_device_fires_the_429_alert_and_nothing_else(stack: Stack) -> None:
    prometheus = stack.prometheus

    async def settled() -> tuple[bool, dict[str, str]]:
        both = "job:biometrics_records_consumed:rate5m > 0 and on() "
        both += "job:biometrics_zone_records_processed:rate5m > 0"
        return bool(await prometheus.query(both)), await prometheus.alerts()

    async with posting(stack.producer_url):
        await eventually(
            settled,
            lambda seen: seen == (True, {}),
            timeout_s=_ALERT_TIMEOUT_S,
            awaiting="events consumed and zone-processed, no alert pending or firing",
        )
    async with posting(stack.producer_url, device_id=str(uuid.uuid4()), pause_s=_FLOOD_PAUSE_S):
        await firing(prometheus, "BiometricsProducerRateLimited", "route=/biometrics")
        # Every group evaluates a few more times, by Prometheus' own clock, so that an alert the
        # flood set off later than the 429 one would be pending by now.
        seen = await prometheus.evaluations()
        await eventually(
            prometheus.evaluations,
            lambda now: all(_seconds_apart(seen[name], now[name]) >= 5 for name in seen),
            timeout_s=_ALERT_TIMEOUT_S,
            awaiting="five more seconds of rule evaluations",
        )
        active = await prometheus.alerts()
    assert set(active) == {
        "BiometricsProducerRateLimited{job=producer,route=/biometrics,severity=ticket}"
    }


def _seconds_apart(earlier: str, later: str) -> float:
    """The seconds between two of Prometheus' RFC 3339 timestamps (nanoseconds cut to micro)."""
    return (_instant(later) - _instant(earlier)).total_seconds()


def _instant(stamp: str) -> datetime:
    match = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    assert match is not None, stamp
    whole, fraction, zone = match.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    return datetime.fromisoformat(f"{whole}.{micro}{'+00:00' if zone == 'Z' else zone}")
