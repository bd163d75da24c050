"""Scenarios with the broker itself failing: killed mid-load, and absent at start-up.

Each test owns its broker (a LocalKafka it can SIGKILL and start again on the same data and
ports) and runs the services as real processes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx2 as httpx

from consumer_service import EVENT_CONSUMED
from devtools.local_kafka import LocalKafka
from devtools.processes import free_port
from tests.support.load import PostingLoad, accepted_in_topic
from tests.support.polling import eventually, until_status
from tests.support.processes import Samples, metric_samples, service_process
from tests.support.recovery import (
    DEFAULT_REQUEST_TIMEOUT_MS,
    DEFAULT_SESSION_TIMEOUT_MS,
    client_reconnected_s,
    member_rejoined_s,
)
from tests.support.samples import event_body
from tests.support.settings import service_env

DELIVERY_TIMEOUT_S = 3
PARTITIONS = 3
# The producer's requests to a dead broker give up soon.
REQUEST_TIMEOUT_MS = 2000
# A group member's requests keep the default, longer than its session (the broker's smallest):
# aiokafka waits request_timeout_ms for a JoinGroup, which the coordinator may hold for as long
# as the session of a member that is gone.
SESSION_TIMEOUT_MS = 6000


async def test_a_killed_and_restarted_broker_loses_and_duplicates_no_accepted_event(
    own_kafka: LocalKafka,
) -> None:
    bootstrap = own_kafka.bootstrap_servers
    topic = "faults-broker-killed"
    env = service_env(
        bootstrap,
        topic,
        "unused",
        PRODUCER__DELIVERY_TIMEOUT_MS=str(DELIVERY_TIMEOUT_S * 1000),
        KAFKA__REQUEST_TIMEOUT_MS=str(REQUEST_TIMEOUT_MS),
        KAFKA__TOPIC_PARTITIONS=str(PARTITIONS),
    )
    async with (
        service_process("producer_service", env) as producer,
        httpx.AsyncClient(base_url=await producer.url(), timeout=30) as client,
    ):
        async with PostingLoad(client, workers=8) as load:
            await load.wait_until(lambda: len(load.accepted) >= 200)
            await asyncio.to_thread(own_kafka.kill)
            accepted_before_kill = len(load.accepted)
            reconnected_s = client_reconnected_s(REQUEST_TIMEOUT_MS)
            await until_status(client, "/readyz", 503, timeout_s=reconnected_s)
            await load.wait_until(lambda: len(load.rejected) >= 16)
            await asyncio.to_thread(own_kafka.start)
            await until_status(client, "/readyz", 200, timeout_s=reconnected_s)
            accepted_at_restart = len(load.accepted)
            await load.wait_until(lambda: len(load.accepted) >= accepted_at_restart + 200)
        assert await producer.finish() == 0

    statuses = Counter(rejection.status for rejection in load.rejected)
    assert set(statuses) == {503}, statuses
    # Failing fast: no request waited much past the delivery timeout while the broker was gone.
    assert max(elapsed for _, elapsed, _ in load.rejected) < DELIVERY_TIMEOUT_S + 2
    assert all(retry_after and retry_after.isdigit() for _, _, retry_after in load.rejected)
    in_topic = await accepted_in_topic(bootstrap, topic, PARTITIONS, load.accepted)
    print(
        f"broker killed: accepted={len(load.accepted)} (before kill {accepted_before_kill}), "
        f"503={statuses[503]}, in topic={in_topic.records}, missing={len(in_topic.missing)}, "
        f"duplicated={len(in_topic.duplicated)}"
    )
    assert in_topic.missing == []
    assert in_topic.duplicated == []


async def test_services_started_without_a_broker_wait_for_it_and_then_work(
    tmp_path: Path,
) -> None:
    kafka = LocalKafka(port=free_port(), controller_port=free_port(), data_dir=tmp_path / "kafka")
    topic = "faults-broker-absent"
    env = service_env(kafka.bootstrap_servers, topic, "absent-group", KAFKA__CONNECT_RETRY_S="0.5")
    body = event_body()
    try:
        async with (
            service_process("producer_service", env) as producer,
            service_process("consumer_service", env) as consumer,
            httpx.AsyncClient(base_url=await producer.url(), timeout=30) as client,
        ):
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503
            early = await client.post("/biometrics", json=body)
            assert early.status_code == 503
            assert early.headers["retry-after"].isdigit()
            # Its warning that it retries (docs/configuration.md), found by its fields.
            await consumer.wait_for(lambda line: "retry_in_s" in line, awaiting="a retry")

            await asyncio.to_thread(kafka.start)
            # The default request timeout and session: nothing is configured shorter here.
            reconnected_s = client_reconnected_s(DEFAULT_REQUEST_TIMEOUT_MS)
            await until_status(client, "/readyz", 200, timeout_s=reconnected_s)
            late = await client.post("/biometrics", json=body)
            assert late.status_code == 202, late.text
            [line] = await consumer.wait_for(
                lambda line: line["message"] == EVENT_CONSUMED,
                timeout_s=member_rejoined_s(DEFAULT_SESSION_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS),
            )
            assert line["key"] == body["deviceId"]
            codes = await asyncio.gather(producer.finish(), consumer.finish())
        assert codes == [0, 0]
    finally:
        await asyncio.to_thread(kafka.stop)


async def test_the_consumer_probes_report_membership_metrics_and_a_lost_broker(
    own_kafka: LocalKafka,
) -> None:
    topic = "probes"
    env = service_env(
        own_kafka.bootstrap_servers,
        topic,
        "probe-group",
        KAFKA__CONNECT_RETRY_S="0.5",
        CONSUMER__SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS),
    )
    bodies = [event_body() for _ in range(7)]
    async with (
        service_process("producer_service", env) as producer,
        service_process("consumer_service", env) as consumer,
        httpx.AsyncClient(base_url=await producer.url(), timeout=30) as client,
        httpx.AsyncClient(base_url=await consumer.url(), timeout=30) as probes,
    ):
        assert (await probes.get("/healthz")).status_code == 200
        await until_status(probes, "/readyz", 200, timeout_s=60)
        response = await client.post("/biometrics/batch", json=bodies)
        assert response.status_code == 202
        await consumer.wait_for(lambda line: line["message"] == EVENT_CONSUMED, len(bodies))
        await _until_committed(probes, len(bodies))
        samples = metric_samples((await probes.get("/metrics")).text)
        assert samples[("biometrics_records_consumed_total", ())] == len(bodies)
        assert samples[("biometrics_records_handled_total", ())] == len(bodies)
        assert samples[("biometrics_records_dead_lettered_total", ())] == 0
        lags = [v for (name, _), v in samples.items() if name == "biometrics_consumer_lag"]
        assert lags and all(lag == 0 for lag in lags)

        await asyncio.to_thread(own_kafka.kill)
        reconnected_s = client_reconnected_s(DEFAULT_REQUEST_TIMEOUT_MS)
        await until_status(probes, "/readyz", 503, reconnected_s, consumer.last_output)
        assert (await probes.get("/healthz")).status_code == 200
        await asyncio.to_thread(own_kafka.start)
        rejoined_s = member_rejoined_s(SESSION_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS)
        await until_status(probes, "/readyz", 200, rejoined_s, consumer.last_output)
        codes = await asyncio.gather(producer.finish(), consumer.finish())
    assert codes == [0, 0]


async def _until_committed(probes: httpx.AsyncClient, count: int) -> None:
    """Poll /metrics against a deadline until `count` records count as handled and committed."""

    async def scrape() -> Samples:
        return metric_samples((await probes.get("/metrics")).text)

    def committed(samples: Samples) -> bool:
        return (
            samples.get(("biometrics_commit_latency_seconds_count", ()), 0) >= 1
            and samples.get(("biometrics_records_handled_total", ()), 0) >= count
        )

    await eventually(
        scrape, committed, timeout_s=30, awaiting=f"{count} records handled and a commit"
    )
