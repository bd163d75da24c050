"""compose.local.yaml and compose.cluster.local.yaml, read statically: each swaps in the locally
built images for the services of the file it goes with, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from devtools.docker import PROMETHEUS_IMAGE, PYTHON_IMAGE, kafka_image
from tests.support import ROOT
from tests.unit.compose_files import load_compose

# Each override, with the file whose services it swaps.
_OVERRIDES = {
    "compose.local.yaml": "compose.yaml",
    "compose.cluster.local.yaml": "compose.cluster.yaml",
}
_OFFICIAL_KAFKA = "apache/kafka:"
_ALL_FILES = (
    "compose.yaml",
    "compose.local.yaml",
    "compose.cluster.yaml",
    "compose.cluster.local.yaml",
)


@pytest.fixture(params=sorted(_OVERRIDES))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def override(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text("utf-8"))
    return loaded


@pytest.fixture
def compose(name: str) -> dict[str, Any]:
    """The file the override goes with, as written."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / _OVERRIDES[name]).read_text("utf-8"))
    return loaded


def test_override_sets_only_image_names_and_build_arguments(override: dict[str, Any]) -> None:
    assert set(override) == {"services"}
    for name, service in override["services"].items():
        assert set(service) <= {"image", "build"}, name
        assert set(service.get("build", {})) <= {"args"}, name


def test_override_names_services_its_file_has(
    override: dict[str, Any], compose: dict[str, Any]
) -> None:
    assert set(override["services"]) <= set(compose["services"])


def test_override_runs_every_kafka_node_on_the_image_devtools_builds(
    override: dict[str, Any], compose: dict[str, Any]
) -> None:
    nodes = {
        name
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith(_OFFICIAL_KAFKA)
    }
    assert nodes
    assert {name: override["services"].get(name, {}).get("image") for name in nodes} == (
        dict.fromkeys(nodes, kafka_image())
    )


def test_override_builds_every_service_from_the_python_image_devtools_builds(
    override: dict[str, Any], compose: dict[str, Any]
) -> None:
    built = {name for name, service in compose["services"].items() if "build" in service}
    assert {
        name: override["services"]
        .get(name, {})
        .get("build", {})
        .get("args", {})
        .get("PYTHON_IMAGE")
        for name in built
    } == dict.fromkeys(built, PYTHON_IMAGE)


def test_the_local_cluster_pulls_no_image() -> None:
    services = load_compose(*_ALL_FILES)["services"]
    pulled = {
        name: service["image"]
        for name, service in services.items()
        if "build" not in service and service["image"] not in {kafka_image(), PROMETHEUS_IMAGE}
    }
    assert not pulled, f"these would be pulled from a registry: {pulled}"


def test_the_local_stack_runs_prometheus_on_the_image_devtools_builds() -> None:
    services = load_compose("compose.yaml", "compose.local.yaml")["services"]
    assert services["prometheus"]["image"] == PROMETHEUS_IMAGE
