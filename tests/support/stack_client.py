"""What the Docker tests do to a running compose stack from the host: pick a compose client,
POST to the producer's published port, read the consumer's logged events, ask Kafka's metadata."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError

from consumer_service import EVENT_CONSUMED
from shared.kafka.adapter import broker_ids, cluster_client, topic_metadata
from tests.support.compose_project import ComposeProject
from tests.support.polling import eventually_blocking
from tests.support.skips import require

# Each client's command, and what its `version` output says when it is that client.
COMPOSE_CLIENTS = {
    "compose-v2": (("docker", "compose"), "v2."),
    "compose-v1": (("docker-compose",), "version 1."),
}
_READY_TIMEOUT_S = 120.0

Coordinates = tuple[int, int]  # (partition, offset)
Poster = Callable[[str, Any], tuple[int, Any]]


def compose_client(name: str) -> tuple[str, ...]:
    """The command of the named client of COMPOSE_CLIENTS; skip (or fail, where Docker is
    required) when it is not installed."""
    command, version_marker = COMPOSE_CLIENTS[name]
    require(_client_version(command).find(version_marker) >= 0, f"no {name} client")
    return command


def poster(stack: ComposeProject) -> Poster:
    """A function POSTing JSON to the producer's published port, returning (status, body)."""
    port = int(stack.run("port", "producer", "8000").strip().rsplit(":", 1)[1])

    def post(path: str, body: Any) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            headers = {"Content-Type": "application/json"}
            connection.request("POST", path, body=json.dumps(body), headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    return post


def consumed(stack: ComposeProject) -> dict[Coordinates, str]:
    """The events the consumer has logged so far: {(partition, offset): key}."""
    events: dict[Coordinates, str] = {}
    for line in stack.logs("consumer").splitlines():
        _, brace, rest = line.partition("{")  # after the client's "consumer-1  | " prefix
        if not brace:
            continue
        try:
            entry = json.loads(brace + rest)
        except json.JSONDecodeError:
            continue
        if entry.get("message") == EVENT_CONSUMED:
            events[(entry["partition"], entry["offset"])] = entry["key"]
    return events


def wait_until_consumed(
    stack: ComposeProject, expected: set[Coordinates], timeout_s: float = 60.0
) -> dict[Coordinates, str]:
    """Poll the consumer's log until it has logged every expected event; fail if it does not."""
    return eventually_blocking(
        lambda: consumed(stack),
        lambda events: expected <= set(events),
        timeout_s=timeout_s,
        interval_s=0.5,
        awaiting=f"the consumer logging the {len(expected)} accepted events",
    )


async def topic_partitions(bootstrap: str, topic: str) -> set[int]:
    """The topic's partitions, from a metadata request: none while it does not exist."""
    return set(await partition_leaders(bootstrap, topic))


async def partition_leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """Each of the topic's partitions with the node id that leads it now (-1: none)."""
    async with cluster_client({"bootstrap_servers": bootstrap}) as client:
        for node_id in broker_ids(client):
            try:
                [described] = await topic_metadata(client, node_id, [topic])
            except KafkaError:
                continue  # a node that is down: ask the next
            return {p["partition"]: p["leader"] for p in described["partitions"]}
    raise KafkaError("no broker answered a metadata request")


def wait_until_answering(stack: ComposeProject, port: int, path: str = "/healthz") -> None:
    """Poll the producer's `path` until it answers 200; fail with the logs if it never does."""

    def status() -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", path)
            return connection.getresponse().status
        finally:
            connection.close()

    eventually_blocking(
        status,
        lambda answered: answered == 200,
        timeout_s=_READY_TIMEOUT_S,
        interval_s=0.5,
        awaiting=f"the producer answering {path} with 200",
        ignoring=(OSError,),
        context=lambda: stack.run("logs", "--no-color", "--tail", "40"),
    )


def _client_version(command: tuple[str, ...]) -> str:
    """The compose client's `version` output, or "" when it is not installed."""
    if shutil.which(command[0]) is None:
        return ""
    try:
        result = subprocess.run(
            [*command, "version"], capture_output=True, text=True, check=False, timeout=30
        )
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout if result.returncode == 0 else ""
