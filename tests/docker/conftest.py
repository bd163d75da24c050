"""Fixtures for tests against a Docker engine: skipped where none answers, unless required.

CI sets TEST_REQUIRE_DOCKER=1 after starting its engine, which turns a missing engine or compose
client into a failure instead of a skip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.skips import require

_HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine (and a compose client)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/docker with `docker`."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Require a Docker engine answering the docker command line ($DOCKER_HOST or the default)."""
    docker = shutil.which("docker")
    answered = False
    if docker is not None:
        try:
            result = subprocess.run(
                [docker, "version", "--format", "{{.Server.Version}}"],
                capture_output=True,
                check=False,
                timeout=10,
            )
            answered = result.returncode == 0
        except subprocess.TimeoutExpired:
            pass
    require(answered, "no Docker engine answers")
