"""The compose files, read statically: valid for Compose v2 and v1.29, and wired to the real
settings. Each stack is checked as Compose merges it: compose.yaml alone, and with
compose.cluster.yaml over it (three Kafka nodes)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from shared.runtime.settings import ENV_PREFIX, Settings, load_settings
from tests.support import ROOT
from tests.support.settings import setting_path
from tests.unit.compose_files import (
    INTERPOLATION,
    container_ports,
    environment,
    listeners,
    load_compose,
)


class _Stack(NamedTuple):
    files: tuple[str, ...]
    nodes: tuple[str, ...]  # the Kafka services


_STACKS = {
    "single": _Stack(("compose.yaml",), ("kafka",)),
    "cluster": _Stack(("compose.yaml", "compose.cluster.yaml"), ("kafka", "kafka-2", "kafka-3")),
}
# Every file as written, overrides included: each must be valid on its own.
_FILES = (
    "compose.yaml",
    "compose.local.yaml",
    "compose.cluster.yaml",
    "compose.cluster.local.yaml",
)
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


@pytest.fixture(params=sorted(_STACKS))
def stack(request: pytest.FixtureRequest) -> _Stack:
    return _STACKS[request.param]


@pytest.fixture
def compose(stack: _Stack) -> dict[str, Any]:
    """The stack's files merged as Compose reads them when the shell sets none of their
    variables."""
    return load_compose(*stack.files)


@pytest.fixture
def settings() -> Settings:
    return load_settings(ROOT, env={})


def test_compose_files_match_the_compose_spec() -> None:
    result = subprocess.run(
        [*_check_jsonschema(), "--builtin-schema", "vendor.compose-spec"]
        + [str(ROOT / name) for name in _FILES],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", _FILES)
def test_every_variable_a_compose_file_reads_has_a_default(name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    without_defaults = re.findall(r"\$\{?\w+", INTERPOLATION.sub("", text))
    assert not without_defaults, f"needs a default (${{NAME:-value}}): {without_defaults}"


@pytest.mark.parametrize("name", _FILES)
def test_compose_file_avoids_keys_docker_compose_1_29_rejects(name: str) -> None:
    compose = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
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


def test_compose_runs_exactly_the_kafka_nodes_producer_consumer_and_zones(
    compose: dict[str, Any], stack: _Stack
) -> None:
    services = {name for name, service in compose["services"].items() if "profiles" not in service}
    assert services == {*stack.nodes, *_APP_SERVICES}


def test_the_monitoring_profile_adds_prometheus_with_the_rules_scraping_the_three_services(
    compose: dict[str, Any], settings: Settings
) -> None:
    profiled = {
        name: service["profiles"]
        for name, service in compose["services"].items()
        if "profiles" in service
    }
    assert profiled == {"prometheus": ["monitoring"]}
    prometheus = compose["services"]["prometheus"]
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in prometheus["volumes"]}
    config_path = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = config_path.removeprefix("--config.file=")
    folder = Path(config_path).parent.as_posix()
    assert mounted[folder] == "./deploy/prometheus"
    config = yaml.safe_load((ROOT / "deploy/prometheus" / Path(config_path).name).read_text())
    rule_files = {Path(path).name for path in config["rule_files"]}
    assert rule_files == {"recording.yaml", "alerts.yaml"}
    assert {Path(path).parent.as_posix() for path in config["rule_files"]} == {folder}
    scraped = {
        job["job_name"]: (sd["names"], sd["port"])
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
    }
    assert scraped == {
        "producer": (["producer"], settings.http.port),
        "consumer": (["consumer"], settings.consumer.probe_port),
        "zones": (["zones"], settings.zones.probe_port),
    }
    assert (
        environment(compose["services"]["consumer"])["BIOMETRICS_CONSUMER__PROBE_HOST"]
        == _ALL_INTERFACES
    )


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
    assert settings.http.port in container_ports(compose["services"]["producer"])


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
    published = container_ports(compose["services"]["zones"]).values()
    assert all(host_port is None for host_port in published)


def test_zones_probes_listen_on_all_interfaces(compose: dict[str, Any]) -> None:
    variables = environment(compose["services"]["zones"])
    assert variables.get(f"{ENV_PREFIX}_ZONES__PROBE_HOST") == _ALL_INTERFACES


def test_producer_listens_on_all_interfaces(compose: dict[str, Any]) -> None:
    variables = environment(compose["services"]["producer"])
    assert variables.get(f"{ENV_PREFIX}_HTTP__HOST") == _ALL_INTERFACES


def test_every_biometrics_variable_names_a_settings_field(compose: dict[str, Any]) -> None:
    unknown = [
        f"services.{name}: {variable}"
        for name, service in compose["services"].items()
        for variable in environment(service)
        if variable.startswith(f"{ENV_PREFIX}_") and setting_path(variable) is None
    ]
    assert not unknown, f"no such setting: {unknown}"


@pytest.mark.parametrize("service", _APP_SERVICES)
def test_service_environment_loads_as_valid_settings(compose: dict[str, Any], service: str) -> None:
    variables = environment(compose["services"][service])
    loaded = load_settings(ROOT, variables)
    assert loaded.kafka.bootstrap_servers == variables[f"{ENV_PREFIX}_KAFKA__BOOTSTRAP_SERVERS"]


def test_services_bootstrap_from_every_nodes_advertised_internal_listener(
    compose: dict[str, Any], stack: _Stack
) -> None:
    advertised = []
    for node in stack.nodes:
        kafka = environment(compose["services"][node])
        internal = kafka.get("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT")
        address = listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])[internal]
        host, port = address.rsplit(":", 1)
        assert host == node, "the internal listener must be advertised under the service's name"
        assert listeners(kafka["KAFKA_LISTENERS"])[internal].endswith(f":{port}")
        advertised.append(address)
    for name in _APP_SERVICES:
        bootstrap = environment(compose["services"][name])[f"{ENV_PREFIX}_KAFKA__BOOTSTRAP_SERVERS"]
        assert bootstrap == ",".join(advertised), name


def test_each_nodes_external_listener_is_published_on_its_advertised_port(
    compose: dict[str, Any], stack: _Stack
) -> None:
    host_ports = []
    for node in stack.nodes:
        kafka = compose["services"][node]
        advertised = listeners(environment(kafka)["KAFKA_ADVERTISED_LISTENERS"])["EXTERNAL"]
        host, port = advertised.rsplit(":", 1)
        assert host == "localhost"
        external = listeners(environment(kafka)["KAFKA_LISTENERS"])["EXTERNAL"]
        assert container_ports(kafka).get(int(external.rsplit(":", 1)[1])) == int(port), node
        host_ports.append(int(port))
    assert len(set(host_ports)) == len(stack.nodes), "each node needs a host port of its own"


@pytest.mark.parametrize(
    ("service", "shutdown_timeout"),
    [("producer", "http"), ("consumer", "consumer"), ("zones", "zones")],
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


def _seconds(duration: str | None) -> float:
    if duration is None:
        return _DEFAULT_GRACE_S
    parts = _DURATION_PART.findall(duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * _DURATION_UNIT_S[unit] for number, unit in parts)
