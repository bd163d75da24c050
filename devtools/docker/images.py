"""The images that stand in for registry images where none can be pulled.

`biometrics-local/python:3.11` replaces python:3.11-slim as the services' base (compose.local.yaml
passes it as PYTHON_IMAGE), `biometrics-local/kafka:<version>` replaces apache/kafka:<version>,
`biometrics-local/prometheus:bookworm` (Debian's package) replaces prom/prometheus.
Each is also tagged with a hash of its inputs, and is rebuilt only when that tag is missing.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path

from devtools.docker.client import DockerClient
from devtools.docker.command import run_command
from devtools.docker.errors import BuildError
from devtools.docker.fingerprint import fingerprint
from devtools.docker.paths import cache_root
from devtools.docker.rootfs import ensure_rootfs_image
from devtools.local_kafka import ensure_kafka_classpath, kafka_version

REPOSITORY = "biometrics-local"
PYTHON_IMAGE = f"{REPOSITORY}/python:3.11"
PROMETHEUS_IMAGE = f"{REPOSITORY}/prometheus:bookworm"
_HERE = Path(__file__).parent
_PROJECT = _HERE.parents[1]
_KAFKA_POM = _PROJECT / "devtools" / "kafka" / "pom.xml"
_PYTHON_PACKAGES = ("python3", "python3-venv", "ca-certificates")
_JRE_PACKAGES = ("openjdk-17-jre-headless",)
_PROMETHEUS_PACKAGES = ("prometheus",)
_PIP_TIMEOUT_S = 900.0


def kafka_image() -> str:
    """The local Kafka image's name, for the version devtools/kafka/pom.xml declares."""
    return f"{REPOSITORY}/kafka:{kafka_version()}"


def ensure_python_image(client: DockerClient) -> str:
    """Build the Python base image unless one with the same inputs exists; return its name."""
    base = ensure_rootfs_image(client, f"{REPOSITORY}/debian-python", _PYTHON_PACKAGES)
    requirements = _project_requirements()
    sources = _HERE / "python"

    def fill(context: Path) -> None:
        _download_wheels(requirements, context / "wheels")

    return _ensure_built(client, PYTHON_IMAGE, sources, base, [*requirements], fill)


def ensure_kafka_image(client: DockerClient) -> str:
    """Build the Kafka image unless one with the same inputs exists; return its name."""
    base = ensure_rootfs_image(client, f"{REPOSITORY}/debian-jre", _JRE_PACKAGES)
    sources = _HERE / "kafka"

    def fill(context: Path) -> None:
        shutil.copytree(ensure_kafka_classpath(), context / "libs")

    return _ensure_built(client, kafka_image(), sources, base, [_KAFKA_POM.read_text()], fill)


def ensure_prometheus_image(client: DockerClient) -> str:
    """Build the Prometheus image (Debian's package) unless it exists; return its name."""
    base = ensure_rootfs_image(client, f"{REPOSITORY}/debian-prometheus", _PROMETHEUS_PACKAGES)
    return _ensure_built(client, PROMETHEUS_IMAGE, _HERE / "prometheus", base, [], lambda _: None)


def _ensure_built(
    client: DockerClient,
    name: str,
    sources: Path,
    base: str,
    inputs: list[str],
    fill: Callable[[Path], None],
) -> str:
    """Build sources (plus what fill adds) FROM base as name, tagged with the inputs' hash."""
    repository, version = name.rsplit(":", 1)
    exact = f"{repository}:{version}-{fingerprint(sources, base, *inputs)}"
    if not client.has_image(exact):
        cache_root().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="image-", dir=cache_root()) as work:
            context = Path(work) / "context"
            shutil.copytree(sources, context)
            fill(context)
            client.build(context, exact, {"BASE_IMAGE": base})
    client.tag(exact, name)
    client.remove_other_tags(repository, keep=(version, exact.rsplit(":", 1)[1]))
    return name


def _project_requirements() -> list[str]:
    """The project's dependencies and build requirements, as pyproject.toml declares them."""
    with (_PROJECT / "pyproject.toml").open("rb") as file:
        pyproject = tomllib.load(file)
    return [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"], "wheel"]


def _download_wheels(requirements: list[str], wheels: Path) -> None:
    """pip wheel the requirements and everything they need into wheels, on this machine."""
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels)]
    run_command([*command, *requirements], timeout_s=_PIP_TIMEOUT_S, error=BuildError)
