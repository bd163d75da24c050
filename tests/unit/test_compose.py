"""compose.yaml, read statically: valid for Compose v2 and v1.29, and wired to the real settings."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from shared.settings import ENV_PREFIX, Settings, load_settings
from tests.support import ROOT

_COMPOSE_FILE = ROOT / "compose.yaml"
_APP_SERVICES = ("producer", "consumer", "zones")
_ALL_INTERFACES = "0.0.0.0"
# Each of these makes docker-compose 1.29 reject the whole file (checked with 1.29.2).
_V1_REJECTED_TOP_LEVEL = ("name", "include")
_V1_REJECTED_SERVICE = ("develop",)
_V1_REJECTED_HEALTHCHECK = ("start_interval",)
_V1_REJECTED_DEPENDS_ON = ("restart", "required")
# Compose's default when a service sets no stop_grace_period.
_DEFAULT_GRACE_S = 10.0
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_DURATION_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# ${NAME:-default}: the one form of interpolation compose.yaml uses, so it runs as it is.
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+):-(?P<default>[^}]*)\}")


@pytest.fixture
def compose() -> dict[str, Any]:
    """compose.yaml as Compose reads it when the shell sets none of its variables."""
    text = _INTERPOLATION.sub(lambda match: match["default"], _COMPOSE_FILE.read_text("utf-8"))
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


@pytest.fixture
def settings() -> Settings:
    return load_settings(ROOT, env={})


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [*_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(_COMPOSE_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_variable_compose_yaml_reads_has_a_default() -> None:
    text = _COMPOSE_FILE.read_text(encoding="utf-8")
    without_defaults = re.findall(r"\$\{?\w+", _INTERPOLATION.sub("", text))
    assert not without_defaults, f"needs a default (${{NAME:-value}}): {without_defaults}"


def test_compose_file_avoids_keys_docker_compose_1_29_rejects(compose: dict[str, Any]) -> None:
    found = [key for key in _V1_REJECTED_TOP_LEVEL if key in compose]
    for name, service in compose["services"].items():
        found += [f"services.{name}.{key}" for key in _V1_REJECTED_SERVICE if key in service]
        healthcheck = service.get("healthcheck", {})
        found += [
            f"services.{name}.healthcheck.{key}"
            for key in _V1_REJECTED_HEALTHCHECK
            if key in healthcheck
        ]
        depends_on = service.get("depends_on", [])
        if isinstance(depends_on, dict):
            found += [
                f"services.{name}.depends_on.{other}.{key}"
                for other, condition in depends_on.items()
                for key in _V1_REJECTED_DEPENDS_ON
                if key in condition
            ]
    assert not found, f"docker-compose 1.29 rejects: {found}"


def test_compose_runs_exactly_kafka_producer_consumer_and_zones(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kafka", *_APP_SERVICES}


def test_services_run_their_own_console_script_from_one_image(compose: dict[str, Any]) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    scripts = pyproject["project"]["scripts"]
    services = compose["services"]
    assert {services[name]["image"] for name in _APP_SERVICES} == {services["producer"]["image"]}
    for name in _APP_SERVICES:
        build = services[name]["build"]
        assert (build if isinstance(build, str) else build["context"]) == ".", name
        assert scripts[services[name]["command"][0]].startswith(f"{name}_service."), name


def test_producer_publishes_the_configured_http_port(
    compose: dict[str, Any], settings: Settings
) -> None:
    assert settings.http.port in _container_ports(compose["services"]["producer"])


def test_producer_healthcheck_probes_readyz_on_the_configured_port(
    compose: dict[str, Any], settings: Settings
) -> None:
    probe = " ".join(compose["services"]["producer"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{settings.http.port}/readyz" in probe


@pytest.mark.parametrize("service", ["consumer", "zones"])
def test_healthcheck_probes_readyz_on_the_configured_probe_port(
    compose: dict[str, Any], settings: Settings, service: str
) -> None:
    probe = " ".join(compose["services"][service]["healthcheck"]["test"])
    section = getattr(settings, service)
    assert f"http://127.0.0.1:{section.probe_port}/readyz" in probe


def test_zones_publishes_no_fixed_host_port_so_it_can_be_scaled(compose: dict[str, Any]) -> None:
    published = _container_ports(compose["services"]["zones"]).values()
    assert all(host_port is None for host_port in published)


def test_zones_probes_listen_on_all_interfaces(compose: dict[str, Any]) -> None:
    environment = _environment(compose["services"]["zones"])
    assert environment.get(f"{ENV_PREFIX}_ZONES__PROBE_HOST") == _ALL_INTERFACES


def test_producer_listens_on_all_interfaces(compose: dict[str, Any]) -> None:
    environment = _environment(compose["services"]["producer"])
    assert environment.get(f"{ENV_PREFIX}_HTTP__HOST") == _ALL_INTERFACES


def test_every_biometrics_variable_names_a_settings_field(compose: dict[str, Any]) -> None:
    unknown = [
        f"services.{name}: {variable}"
        for name, service in compose["services"].items()
        for variable in _environment(service)
        if variable.startswith(f"{ENV_PREFIX}_") and not _names_a_field(variable)
    ]
    assert not unknown, f"no such setting: {unknown}"


@pytest.mark.parametrize("service", _APP_SERVICES)
def test_service_environment_loads_as_valid_settings(compose: dict[str, Any], service: str) -> None:
    environment = _environment(compose["services"][service])
    loaded = load_settings(ROOT, environment)
    assert loaded.kafka.bootstrap_servers == environment[f"{ENV_PREFIX}_KAFKA__BOOTSTRAP_SERVERS"]


def test_services_bootstrap_from_kafka_advertised_internal_listener(
    compose: dict[str, Any],
) -> None:
    kafka = _environment(compose["services"]["kafka"])
    internal = kafka.get("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT")
    advertised = _listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])[internal]
    host, port = advertised.rsplit(":", 1)
    assert host == "kafka", "the internal listener must be advertised under the service's name"
    assert _listeners(kafka["KAFKA_LISTENERS"])[internal].endswith(f":{port}")
    for name in _APP_SERVICES:
        bootstrap = _environment(compose["services"][name])[
            f"{ENV_PREFIX}_KAFKA__BOOTSTRAP_SERVERS"
        ]
        assert bootstrap == advertised, name


def test_kafka_external_listener_is_published_on_its_advertised_port(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]
    advertised = _listeners(_environment(kafka)["KAFKA_ADVERTISED_LISTENERS"])["EXTERNAL"]
    host, port = advertised.rsplit(":", 1)
    assert host == "localhost"
    assert _container_ports(kafka).get(int(port)) == int(port)


@pytest.mark.parametrize(
    ("service", "shutdown_timeout"),
    # The zone processor finishes its transaction within consumer.shutdown_timeout_s.
    [("producer", "http"), ("consumer", "consumer"), ("zones", "consumer")],
)
def test_stop_grace_period_outlasts_the_shutdown_timeout(
    compose: dict[str, Any], settings: Settings, service: str, shutdown_timeout: str
) -> None:
    grace = compose["services"][service].get("stop_grace_period")
    timeout: float = getattr(settings, shutdown_timeout).shutdown_timeout_s
    assert _seconds(grace) > timeout


def test_dockerfile_copies_only_paths_in_the_build_context() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    ignored = [
        line.strip().removeprefix("**/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        source.rstrip("/")
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    missing = [source for source in sources if not (ROOT / source).exists()]
    excluded = [s for s in sources if any(fnmatch(s, pattern) for pattern in ignored)]
    assert sources
    assert not missing, f"the Dockerfile copies missing paths: {missing}"
    assert not excluded, f".dockerignore excludes paths the Dockerfile copies: {excluded}"


def _check_jsonschema() -> list[str]:
    executable = Path(sys.executable).parent / "check-jsonschema"
    return [str(executable)] if executable.is_file() else [sys.executable, "-m", "check_jsonschema"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def _names_a_field(variable: str) -> bool:
    path = variable.removeprefix(f"{ENV_PREFIX}_").lower().split("__")
    model: type[BaseModel] | None = Settings
    for part in path:
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation  # a section: the next part names one of its fields
        else:
            model = None
    return model is None


def _listeners(value: str) -> dict[str, str]:
    """`NAME://host:port,...` as {NAME: "host:port"}."""
    return dict(item.split("://", 1) for item in value.split(","))


def _container_ports(service: dict[str, Any]) -> dict[int, int | None]:
    """Each published container port, with the host port it is published on (None: any)."""
    ports: dict[int, int | None] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            ports[int(entry["target"])] = int(published) if published else None
        else:
            parts = str(entry).split("/", 1)[0].split(":")
            ports[int(parts[-1])] = int(parts[-2]) if len(parts) > 1 else None
    return ports


def _seconds(duration: str | None) -> float:
    if duration is None:
        return _DEFAULT_GRACE_S
    parts = _DURATION_PART.findall(duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * _DURATION_UNIT_S[unit] for number, unit in parts)
