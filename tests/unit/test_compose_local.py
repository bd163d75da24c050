"""compose.local.yaml, read statically: it swaps in the locally built images and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from devtools.docker import PYTHON_IMAGE, kafka_image
from tests.support import ROOT


@pytest.fixture
def override() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.local.yaml").read_text("utf-8"))
    return loaded


@pytest.fixture
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))
    return loaded


def test_override_sets_only_image_names_and_build_arguments(override: dict[str, Any]) -> None:
    assert set(override) == {"services"}
    for name, service in override["services"].items():
        assert set(service) <= {"image", "build"}, name
        assert set(service.get("build", {})) <= {"args"}, name


def test_override_names_services_compose_yaml_has(
    override: dict[str, Any], compose: dict[str, Any]
) -> None:
    assert set(override["services"]) <= set(compose["services"])


def test_override_runs_kafka_on_the_image_devtools_builds(override: dict[str, Any]) -> None:
    assert override["services"]["kafka"]["image"] == kafka_image()


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
