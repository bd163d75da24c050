"""The compose stack for real: `up --build`, events over HTTP into `logs consumer` and into the
zone topic, Prometheus of the `monitoring` profile scraping the three services, two zone
processors sharing the partitions, SIGTERM, down.

Runs once per compose client: `docker compose` (v2, what users have) and `docker-compose` (1.29,
Debian's). Set COMPOSE_FILE=compose.yaml:compose.local.yaml where no registry can be reached.
The tests of one client share one stack and run in file order: each stops a little more of it.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx2 as httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.docker import DockerError
from devtools.processes import free_port
from tests.support.compose_project import ComposeProject
from tests.support.polling import eventually, eventually_blocking
from tests.support.samples import event_body
from tests.support.stack_client import (
    COMPOSE_CLIENTS,
    Coordinates,
    compose_client,
    poster,
    topic_partitions,
    wait_until_answering,
    wait_until_consumed,
)
from tests.support.topics import (
    RawRecord,
    Records,
    committed_offsets,
    end_offsets,
    read_pairs,
    wait_until_committed,
)
from tests.support.zones import expected_zone_records

_READY_TIMEOUT_S = 120.0
_LOAD_WORKERS = 4
_LOAD_MAX_REQUESTS = 2000
_ACCEPTED_BEFORE_STOP = 50
# The defaults of docs/configuration.md; compose.yaml sets none of them.
_TOPIC = "BiometricsImported"
_GROUP = "biometrics-consumer"
_ZONES_TOPIC = "HeartRateZoneReached"
_ZONES_GROUP = "biometrics-zones"
_ZONES_PROBE_PORT = 8002
_ZONES_TIMEOUT_S = 60.0
# Against event_body's maxHeartRate of 190: Zone1, Zone3 and Zone5.
_ZONE_HEART_RATES = (100, 140, 180)
_ZONE_INSTANCES = 2


@pytest.fixture(scope="module", params=sorted(COMPOSE_CLIENTS))
def stack(request: pytest.FixtureRequest, docker_engine: None) -> Iterator[ComposeProject]:
    """The whole stack up under a fresh project name, on free host ports; down -v afterwards."""
    command = compose_client(request.param)
    variables = {
        "PRODUCER_HOST_PORT": str(free_port()),
        "KAFKA_HOST_PORT": str(free_port()),
        "PROMETHEUS_HOST_PORT": str(free_port()),
        "COMPOSE_PROFILES": "monitoring",
    }
    name = f"biometrics-smoke-{request.param}-{uuid.uuid4().hex[:8]}"
    project = ComposeProject(command, name, variables)
    try:
        project.up()
        wait_until_answering(project, int(variables["PRODUCER_HOST_PORT"]))
        yield project
    finally:
        project.down()


def test_posted_events_appear_in_the_consumer_logs(stack: ComposeProject) -> None:
    post = poster(stack)
    devices = [str(uuid.uuid4()) for _ in range(5)]
    accepted: dict[Coordinates, str] = {}
    for i in range(30):
        device = devices[i % len(devices)]
        status, answer = post("/biometrics", event_body(device))
        assert status == 202, answer
        accepted[(answer["partition"], answer["offset"])] = device
    batch = [event_body(devices[0]) for _ in range(10)]
    status, answer = post("/biometrics/batch", batch)
    assert status == 202, answer
    accepted.update({(r["partition"], r["offset"]): devices[0] for r in answer["records"]})

    consumed = wait_until_consumed(stack, set(accepted))

    assert {coordinates: consumed[coordinates] for coordinates in accepted} == accepted


def test_prometheus_of_the_monitoring_profile_scrapes_the_three_services_with_the_rules(
    stack: ComposeProject,
) -> None:
    api = f"http://127.0.0.1:{stack.variables['PROMETHEUS_HOST_PORT']}/api/v1"

    def health() -> dict[str, list[str]]:
        targets = httpx.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
        found: dict[str, list[str]] = {}
        for target in targets:
            found.setdefault(target["labels"]["job"], []).append(target["health"])
        return found

    eventually_blocking(
        health,
        lambda found: found == {"producer": ["up"], "consumer": ["up"], "zones": ["up"]},
        timeout_s=_READY_TIMEOUT_S,
        awaiting="Prometheus' targets producer, consumer and zones up",
        ignoring=(httpx.TransportError, KeyError, ValueError),
    )
    groups = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
    assert {group["name"] for group in groups} == {
        "biometrics-rates",
        "biometrics-producer",
        "biometrics-consumer",
        "biometrics-zones",
    }


async def test_posted_events_become_zone_events_exactly_once(stack: ComposeProject) -> None:
    post = poster(stack)
    posted: list[RawRecord] = []
    for _ in range(10):
        body = event_body(readings=len(_ZONE_HEART_RATES))  # a device of its own
        for reading, heart_rate in zip(body["heartRates"], _ZONE_HEART_RATES, strict=True):
            reading["value"] = heart_rate
        status, answer = post("/biometrics", body)
        assert status == 202, answer
        posted.append((body["deviceId"].encode(), orjson.dumps(body)))
    expected = expected_zone_records(posted)
    assert expected.total() == len(_ZONE_HEART_RATES) * len(posted)  # every reading in a zone

    seen = await _wait_until_zone_records(stack, expected)

    devices = {key for key, _ in posted}
    assert Counter({pair: n for pair, n in seen.items() if pair[0] in devices}) == expected


async def test_two_zone_processors_split_the_input_partitions(stack: ComposeProject) -> None:
    partitions = len(await topic_partitions(_bootstrap(stack), _TOPIC))
    assert partitions > 1, "one partition cannot be split"

    stack.scale("zones", _ZONE_INSTANCES)

    owned = await _wait_until_split(stack, partitions)
    assert len(owned) == _ZONE_INSTANCES and all(owned.values()), owned
    assert sum(owned.values()) == partitions


def test_sigterm_stops_the_producer_with_exit_code_0_losing_no_accepted_event(
    stack: ComposeProject,
) -> None:
    post = poster(stack)
    producer = stack.container("producer")
    accepted: set[Coordinates] = set()
    enough = threading.Event()
    lock = threading.Lock()

    def send_until_refused() -> None:
        for _ in range(_LOAD_MAX_REQUESTS // _LOAD_WORKERS):
            try:
                status, answer = post("/biometrics", event_body())
            except OSError:
                return  # the producer has closed its port
            if status != 202:
                return
            with lock:
                accepted.add((answer["partition"], answer["offset"]))
                if len(accepted) >= _ACCEPTED_BEFORE_STOP:
                    enough.set()

    workers = [threading.Thread(target=send_until_refused) for _ in range(_LOAD_WORKERS)]
    for worker in workers:
        worker.start()
    try:
        assert enough.wait(_READY_TIMEOUT_S), "the producer accepted too few events under load"
        stack.stop("producer")  # SIGTERM while requests are in flight
    finally:
        for worker in workers:
            worker.join()

    assert stack.state(producer)["ExitCode"] == 0, stack.logs("producer")[-4000:]
    assert set(wait_until_consumed(stack, accepted)) >= accepted


def test_sigterm_stops_the_consumer_with_exit_code_0(stack: ComposeProject) -> None:
    consumer = stack.container("consumer")

    stack.stop("consumer")

    state = stack.state(consumer)
    assert (state["Status"], state["ExitCode"]) == ("exited", 0), stack.logs("consumer")[-4000:]


async def test_the_stopped_consumer_has_committed_every_event_in_the_topic(
    stack: ComposeProject,
) -> None:
    ends = await _written_ends(stack)

    assert await committed_offsets(_bootstrap(stack), _GROUP) == ends


async def test_the_zone_processors_commit_every_event_in_the_topic(stack: ComposeProject) -> None:
    ends = await _written_ends(stack)

    await wait_until_committed(_bootstrap(stack), _ZONES_GROUP, ends)

    assert await committed_offsets(_bootstrap(stack), _ZONES_GROUP) == ends


def test_sigterm_stops_each_zone_processor_with_exit_code_0(stack: ComposeProject) -> None:
    containers = stack.containers("zones")
    assert containers

    stack.stop("zones")

    exits = [(state["Status"], state["ExitCode"]) for state in map(stack.state, containers)]
    assert exits == [("exited", 0)] * len(containers), stack.logs("zones")[-4000:]


def test_down_removes_the_containers_network_and_volume(stack: ComposeProject) -> None:
    stack.stop()

    stack.down()

    assert stack.leftovers() == []


def _bootstrap(stack: ComposeProject) -> str:
    """Kafka's EXTERNAL listener, published on the host."""
    return f"127.0.0.1:{stack.variables['KAFKA_HOST_PORT']}"


async def _written_ends(stack: ComposeProject) -> dict[int, int]:
    """The input topic's end offset per partition that has records."""
    bootstrap = _bootstrap(stack)
    partitions = await topic_partitions(bootstrap, _TOPIC)
    assert partitions, f"no topic {_TOPIC}"
    ends = await end_offsets(bootstrap, _TOPIC, len(partitions))
    return {partition: end for partition, end in ends.items() if end > 0}


async def _wait_until_zone_records(stack: ComposeProject, expected: Records) -> Records:
    """Read the zone topic (read_committed) until it holds the expected records; return them."""
    bootstrap = _bootstrap(stack)

    async def zone_records() -> Records:
        partitions = await topic_partitions(bootstrap, _ZONES_TOPIC)
        if not partitions:  # the zone processor creates its topic when it starts
            return Counter()
        return await read_pairs(bootstrap, _ZONES_TOPIC, len(partitions), "read_committed")

    return await eventually(
        zone_records,
        lambda seen: seen >= expected,
        timeout_s=_ZONES_TIMEOUT_S,
        interval_s=0.5,
        awaiting=f"the {expected.total()} zone events in {_ZONES_TOPIC}",
        context=lambda: stack.logs("zones")[-3000:],
    )


def _partitions_owned(stack: ComposeProject) -> dict[str, float]:
    """Each zone processor container's biometrics_zone_partitions_owned, from its /metrics."""
    url = f"http://127.0.0.1:{_ZONES_PROBE_PORT}/metrics"
    script = (
        f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=3).read().decode())"
    )
    owned = {}
    for container in stack.containers("zones"):
        families = text_string_to_metric_families(stack.exec(container, "python", "-c", script))
        (family,) = [f for f in families if f.name == "biometrics_zone_partitions_owned"]
        owned[container] = family.samples[0].value
    return owned


async def _wait_until_split(stack: ComposeProject, partitions: int) -> dict[str, float]:
    """Poll the zone processors' /metrics until _ZONE_INSTANCES of them share all the partitions,
    each owning some; return what each owns then."""

    def split(owned: dict[str, float]) -> bool:
        shared = len(owned) == _ZONE_INSTANCES and all(owned.values())
        return shared and sum(owned.values()) == partitions

    return await eventually(
        lambda: _partitions_owned(stack),
        split,
        timeout_s=_ZONES_TIMEOUT_S,
        interval_s=0.5,
        awaiting=f"{_ZONE_INSTANCES} zone processors sharing {partitions} partitions",
        ignoring=(DockerError,),  # the new container's probe server is not up yet
    )
