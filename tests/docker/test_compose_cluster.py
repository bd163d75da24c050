"""The compose cluster variant for real: compose.cluster.yaml over COMPOSE_FILE's files, up once
with Compose v2; clients POST events while the leader of a partition is SIGKILLed; then the
answers, the topic (read from the host through the nodes' published EXTERNAL listeners) and the
consumer's log are checked against each other; down.

COMPOSE_FILE's files come first (compose.yaml, plus compose.local.yaml where no registry can be
reached: then compose.cluster.local.yaml is added too). Both compose clients are only asked to
merge the files; one stack is enough to prove the cluster. The tests share that stack and run in
file order: the last takes it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from devtools.processes import free_ports
from tests.support.compose_project import ComposeProject
from tests.support.load import PostingLoad, Rejection, accepted_in_topic
from tests.support.stack_client import (
    COMPOSE_CLIENTS,
    Coordinates,
    compose_client,
    partition_leaders,
    wait_until_answering,
    wait_until_consumed,
)

# Each node's service by its KAFKA_NODE_ID, and the variable that moves its published port.
_NODES = {1: "kafka", 2: "kafka-2", 3: "kafka-3"}
_HOST_PORT_VARIABLES = {
    "kafka": "KAFKA_HOST_PORT",
    "kafka-2": "KAFKA_2_HOST_PORT",
    "kafka-3": "KAFKA_3_HOST_PORT",
}
_APP_SERVICES = ("producer", "consumer", "zones")
_TOPIC = "BiometricsImported"  # the default (docs/configuration.md); the compose files set none
_LOAD_WORKERS = 8
# Accepted before the kill, and accepted after it (all but the requests then in hand sent
# after it) before the load stops.
_ACCEPTED_BEFORE_KILL = 300
_ACCEPTED_AFTER_KILL = 300
_LOAD_TIMEOUT_S = 120.0
_CONSUMED_TIMEOUT_S = 120.0
_ACCEPTED, _UNAVAILABLE = 202, 503


@dataclass(frozen=True)
class _LoadRun:
    """What the clients were answered while `killed` was SIGKILLed: each 202's device id (the
    record key) with its (partition, offset), every other answer, and how many of the 202s came
    after the kill."""

    killed: str
    accepted: dict[str, Coordinates]
    rejected: list[Rejection]
    accepted_after_kill: int

    def statuses(self) -> dict[int, int]:
        statuses = {_ACCEPTED: len(self.accepted)}
        for rejection in self.rejected:
            statuses[rejection.status] = statuses.get(rejection.status, 0) + 1
        return statuses


@pytest.fixture(scope="module")
def cluster(docker_engine: None) -> Iterator[ComposeProject]:
    """The cluster variant up under a fresh project name, on free host ports; down -v after."""
    command = compose_client("compose-v2")
    ports = free_ports(1 + len(_NODES))
    variables = {"COMPOSE_FILE": _cluster_files(), "PRODUCER_HOST_PORT": str(ports[0])}
    variables |= {
        _HOST_PORT_VARIABLES[node]: str(port)
        for node, port in zip(_NODES.values(), ports[1:], strict=True)
    }
    project = ComposeProject(command, f"biometrics-cluster-{uuid.uuid4().hex[:8]}", variables)
    try:
        started = time.monotonic()
        project.up()
        wait_until_answering(project, ports[0], "/readyz")
        print(f"\ncluster: up and ready in {time.monotonic() - started:.0f} s")
        yield project
    finally:
        project.down()


@pytest.fixture(scope="module")
def load_run(cluster: ComposeProject) -> _LoadRun:
    """POSTs from several clients; once enough are accepted the leader of partition 0 is
    SIGKILLed, and the load goes on until as many again are accepted."""
    return asyncio.run(_post_through_a_kill(cluster))


def test_both_compose_clients_merge_the_cluster_files_alike() -> None:
    # With its profile on: docker-compose 1.x's `config` lists a profile's services either way.
    variables = {"COMPOSE_FILE": _cluster_files(), "COMPOSE_PROFILES": "monitoring"}
    merged = {
        name: _merged_view(ComposeProject(compose_client(name), "merge", variables).run("config"))
        for name in sorted(COMPOSE_CLIENTS)
    }

    v1, v2 = merged.values()
    assert set(v2) == {*_NODES.values(), "producer", "consumer", "zones", "prometheus"}
    assert v1 == v2


def test_only_202_or_503_is_answered_while_a_node_is_killed(load_run: _LoadRun) -> None:
    assert set(load_run.statuses()) <= {_ACCEPTED, _UNAVAILABLE}, load_run.statuses()


def test_events_are_accepted_with_one_node_down(load_run: _LoadRun) -> None:
    assert load_run.accepted_after_kill >= _ACCEPTED_AFTER_KILL, (
        f"{load_run.accepted_after_kill} accepted after {load_run.killed} was killed"
    )


async def test_every_accepted_event_is_in_the_topic_exactly_once(
    cluster: ComposeProject, load_run: _LoadRun
) -> None:
    bootstrap = _bootstrap(cluster)
    leaders = await partition_leaders(bootstrap, _TOPIC)
    leaderless = sorted(partition for partition, leader in leaders.items() if leader < 0)
    assert not leaderless, f"partitions unreadable, with no leader: {leaderless}"

    in_topic = await accepted_in_topic(bootstrap, _TOPIC, len(leaders), load_run.accepted)

    print(
        f"\ncluster topic: {in_topic.records} records read through the nodes still up, "
        f"{len(load_run.accepted)} accepted, {len(in_topic.missing)} of them missing, "
        f"{len(in_topic.duplicated)} duplicated"
    )
    assert (in_topic.missing, in_topic.duplicated) == ([], [])


def test_the_consumer_logs_every_accepted_event(
    cluster: ComposeProject, load_run: _LoadRun
) -> None:
    accepted = {coordinates: device for device, coordinates in load_run.accepted.items()}

    logged = wait_until_consumed(cluster, set(accepted), _CONSUMED_TIMEOUT_S)

    print(f"\ncluster consumer: {len(logged)} events logged, {len(accepted)} accepted")
    assert {coordinates: logged[coordinates] for coordinates in accepted} == accepted


def test_down_leaves_nothing_behind(cluster: ComposeProject) -> None:
    started = time.monotonic()
    services = {name: cluster.containers(name) for name in _APP_SERVICES}
    cluster.stop(*_APP_SERVICES)
    stopped = time.monotonic()
    cluster.stop()
    exits = {
        name: [cluster.state(container)["ExitCode"] for container in containers]
        for name, containers in services.items()
    }
    print(
        f"\ncluster: services stopped in {stopped - started:.0f} s (exit codes {exits}), "
        f"the nodes in {time.monotonic() - stopped:.0f} s"
    )

    cluster.down()

    assert cluster.leftovers() == []
    # SIGTERM, with one node still down: each service finishes what it has in hand and exits 0.
    assert exits == {name: [0] * len(containers) for name, containers in services.items()}


def _cluster_files() -> str:
    """COMPOSE_FILE's files with the cluster's override (and its local images, where the stack
    runs on local images) after them."""
    files = os.environ.get("COMPOSE_FILE", "compose.yaml").split(":")
    files.append("compose.cluster.yaml")
    if "compose.local.yaml" in files:
        files.append("compose.cluster.local.yaml")
    return ":".join(files)


def _bootstrap(cluster: ComposeProject) -> str:
    """Every node's EXTERNAL listener, published on the host."""
    ports = (cluster.variables[variable] for variable in _HOST_PORT_VARIABLES.values())
    return ",".join(f"127.0.0.1:{port}" for port in ports)


async def _post_through_a_kill(cluster: ComposeProject) -> _LoadRun:
    producer = f"http://127.0.0.1:{cluster.variables['PRODUCER_HOST_PORT']}"
    started = time.monotonic()
    async with (
        httpx.AsyncClient(base_url=producer, timeout=30) as client,
        PostingLoad(client, _LOAD_WORKERS) as load,
    ):
        await load.wait_for_accepted(_ACCEPTED_BEFORE_KILL, timeout_s=_LOAD_TIMEOUT_S)
        killed = _NODES[(await partition_leaders(_bootstrap(cluster), _TOPIC))[0]]
        await asyncio.to_thread(cluster.kill, killed)
        killed_at, accepted_before = time.monotonic(), len(load.accepted)
        # Too few in time is for test_events_are_accepted_with_one_node_down to say.
        with contextlib.suppress(TimeoutError):
            await load.wait_for_accepted(_ACCEPTED_AFTER_KILL, timeout_s=_LOAD_TIMEOUT_S)
    after = len(load.accepted) - accepted_before
    run = _LoadRun(killed, dict(load.accepted), list(load.rejected), after)
    slowest_503 = max((r.elapsed_s for r in run.rejected), default=0.0)
    print(
        f"\ncluster load: {sum(run.statuses().values())} POSTs in "
        f"{time.monotonic() - started:.1f} s by {_LOAD_WORKERS} clients, answers "
        f"{run.statuses()}; {killed} (leader of {_TOPIC}[0]) SIGKILLed after "
        f"{killed_at - started:.1f} s, {run.accepted_after_kill} accepted after it; "
        f"slowest 503 {slowest_503:.1f} s"
    )
    return run


def _merged_view(config: str) -> dict[str, Any]:
    """Per service of `config`'s output: its image, environment, dependencies and volumes, in
    one form for both clients."""
    services: dict[str, dict[str, Any]] = yaml.safe_load(config)["services"]
    return {
        name: {
            "image": service.get("image"),
            "environment": {k: str(v) for k, v in (service.get("environment") or {}).items()},
            "depends_on": sorted(service.get("depends_on") or []),
            "volumes": sorted(_volume(volume) for volume in service.get("volumes") or []),
        }
        for name, service in services.items()
    }


def _volume(volume: str | dict[str, Any]) -> str:
    if isinstance(volume, dict):
        return f"{volume['source']}:{volume['target']}"
    return ":".join(volume.split(":")[:2])
