"""compose.cluster.yaml over compose.yaml, read statically: three nodes of one static KRaft
quorum, configured alike, and services whose topics survive one node down."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.runtime.settings import load_settings
from tests.support import ROOT
from tests.unit.compose_files import environment, listeners, load_compose

_NODES = ("kafka", "kafka-2", "kafka-3")
_APP_SERVICES = ("producer", "consumer", "zones")
# What may differ between two nodes: who they are, where they are reached, where they keep data.
_PER_NODE_VARIABLES = {"KAFKA_NODE_ID", "KAFKA_ADVERTISED_LISTENERS"}
_PER_NODE_KEYS = {"environment", "ports", "volumes"}
_REPLICATED = {
    "KAFKA_DEFAULT_REPLICATION_FACTOR": "3",
    "KAFKA_MIN_INSYNC_REPLICAS": "2",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "2",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "3",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "2",
}
# apache/kafka's own default is 1 GB; three of them beside the services want less on 2 cores.
_MAX_HEAP_MB = 512
_XMX = re.compile(r"-Xmx(\d+)([mMgG])")


@pytest.fixture
def compose() -> dict[str, Any]:
    return load_compose("compose.yaml", "compose.cluster.yaml")


@pytest.fixture
def nodes(compose: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each node's environment."""
    return {name: environment(compose["services"][name]) for name in _NODES}


def test_the_nodes_are_the_voters_of_one_static_quorum(nodes: dict[str, dict[str, str]]) -> None:
    expected = ",".join(
        f"{variables['KAFKA_NODE_ID']}@{name}:{_port(variables, 'CONTROLLER')}"
        for name, variables in nodes.items()
    )
    for name, variables in nodes.items():
        assert variables["KAFKA_CONTROLLER_QUORUM_VOTERS"] == expected, name
        assert variables["KAFKA_PROCESS_ROLES"] == "broker,controller", name
    assert len({variables["KAFKA_NODE_ID"] for variables in nodes.values()}) == len(_NODES)
    assert len({variables["CLUSTER_ID"] for variables in nodes.values()}) == 1


def test_the_nodes_differ_only_in_their_id_addresses_and_data(compose: dict[str, Any]) -> None:
    first, *others = (compose["services"][name] for name in _NODES)
    for name, node in zip(_NODES[1:], others, strict=True):
        same = {key: value for key, value in node.items() if key not in _PER_NODE_KEYS}
        assert same == {k: v for k, v in first.items() if k not in _PER_NODE_KEYS}, name
        assert _shared_variables(environment(node)) == _shared_variables(environment(first)), name


def test_each_node_keeps_its_log_in_a_volume_of_its_own(compose: dict[str, Any]) -> None:
    sources = []
    for name in _NODES:
        log_dir = environment(compose["services"][name])["KAFKA_LOG_DIRS"]
        (source,) = [
            volume.split(":")[0]
            for volume in compose["services"][name]["volumes"]
            if volume.split(":")[1] == log_dir
        ]
        sources.append(source)
    assert len(set(sources)) == len(_NODES)
    single = load_compose("compose.yaml")["services"]["kafka"]["volumes"]
    assert not {volume.split(":")[0] for volume in single} & set(sources), (
        "a cluster node must not reuse the single-node stack's data"
    )


@pytest.mark.parametrize("node", _NODES)
def test_internal_topics_are_replicated_3_times_and_written_while_2_have_them(
    nodes: dict[str, dict[str, str]], node: str
) -> None:
    assert {key: nodes[node].get(key) for key in _REPLICATED} == _REPLICATED


@pytest.mark.parametrize("node", _NODES)
def test_each_node_caps_its_heap_for_a_small_machine(
    nodes: dict[str, dict[str, str]], node: str
) -> None:
    (number, unit) = _XMX.findall(nodes[node]["KAFKA_HEAP_OPTS"])[-1]
    assert int(number) * (1024 if unit in "gG" else 1) <= _MAX_HEAP_MB


@pytest.mark.parametrize("service", _APP_SERVICES)
def test_service_topics_are_replicated_to_every_node_and_survive_one_down(
    compose: dict[str, Any], service: str
) -> None:
    settings = load_settings(ROOT, environment(compose["services"][service]))

    replicas = settings.kafka.topic_replication_factor
    min_insync = int(settings.kafka.topic_configs["min_insync_replicas"])
    assert (replicas, min_insync) == (len(_NODES), len(_NODES) - 1)


@pytest.mark.parametrize("service", _APP_SERVICES)
def test_service_waits_for_every_node_to_be_healthy(compose: dict[str, Any], service: str) -> None:
    depends_on = compose["services"][service]["depends_on"]
    conditions = {name: depends_on.get(name, {}).get("condition") for name in _NODES}
    assert conditions == dict.fromkeys(_NODES, "service_healthy")


def _port(variables: dict[str, str], listener: str) -> str:
    return listeners(variables["KAFKA_LISTENERS"])[listener].rsplit(":", 1)[1]


def _shared_variables(variables: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in variables.items() if key not in _PER_NODE_VARIABLES}
