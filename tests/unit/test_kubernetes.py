"""The Kubernetes manifests (deploy/kubernetes), each overlay as `kubectl kustomize` renders it:
valid for the Kubernetes API, and wired to the real settings, probes, image and shutdown timeouts.
KEDA's objects are not in the API's schemas: their fields are checked here instead."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import kubernetes_validate
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from shared.runtime.probes import probe_routes
from shared.runtime.settings import ENV_PREFIX, Settings, SettingsError, load_settings
from tests.support import ROOT
from tests.support.settings import setting_path
from tests.unit.kubernetes_manifests import (
    OVERLAYS,
    Manifest,
    config_map_data,
    env_sources,
    find,
    image_user,
    one,
    pod_environment,
    render,
    secret_data,
)

# The oldest version with every field used here (the preStop sleep action, the PDBs'
# unhealthyPodEvictionPolicy), and the newest kubernetes-validate knows.
_KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
_KEDA = "keda.sh/v1alpha1"
_CUSTOM_KINDS = {(_KEDA, "ScaledObject"), (_KEDA, "TriggerAuthentication")}
_PROBE_PATHS = {route.path for route in probe_routes(CollectorRegistry(), lambda: True)}
_ALL_INTERFACES = ("0.0.0.0", "::")
# KEDA's name for each SASL mechanism the services take.
_KEDA_SASL = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
}
# Resident memory measured by `python -m bench` (docs/performance.md): the producer under c64,
# the zone processor under the end-to-end load (also taken for the consumer, built the same way).
_MEASURED_RSS_MIB = {"producer": 72.2, "consumer": 64.9, "zones": 64.9}
# What the copies' memory takes a remembered record (docs/devices.md, tests/unit/test_dedupe.py).
_DEDUPE_BYTES_A_RECORD = 230
_MIB = 1024 * 1024


@dataclass
class _App:
    """One of the three services as deployed: its Deployment, its pods' environment, and the
    settings they load from it (loaded when first asked for, so a bad variable fails the tests
    that need the settings rather than erring in a fixture)."""

    service: str  # producer, consumer or zones
    deployment: Manifest = field(repr=False)
    env: dict[str, str] = field(repr=False)  # secrets among them

    @cached_property
    def settings(self) -> Settings:
        try:
            return load_settings(ROOT, self.env)
        except SettingsError as error:
            pytest.fail(f"{self.service}: {error}")

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        container: dict[str, Any] = self.pod["containers"][0]
        return container

    @property
    def port(self) -> int:
        """The port its probes and /metrics are served on."""
        if self.service == "producer":
            return self.settings.http.port
        return int(getattr(self.settings, self.service).probe_port)

    @property
    def host(self) -> str:
        if self.service == "producer":
            return self.settings.http.host
        return str(getattr(self.settings, self.service).probe_host)


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(request.param)


@pytest.fixture(scope="module")
def apps(objects: list[Manifest]) -> dict[str, _App]:
    """The services' Deployments, by the service each runs (its console script's package)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    found = {}
    for deployment in find(objects, "Deployment"):
        command = deployment["spec"]["template"]["spec"]["containers"][0].get("command", [""])
        if command[0] in scripts:
            service = scripts[command[0]].split(".", 1)[0].removesuffix("_service")
            found[service] = _App(service, deployment, pod_environment(deployment, objects))
    assert set(found) == {"producer", "consumer", "zones"}
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubectl_kustomize_renders_the_overlay(overlay: str) -> None:
    kinds = {item["kind"] for item in render(overlay)}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service"} <= kinds


def test_every_built_in_object_is_valid_for_the_kubernetes_api(objects: list[Manifest]) -> None:
    # Any kind besides KEDA's must be the API's own: a schema not found fails the test.
    checked = 0
    for item in objects:
        if (item["apiVersion"], item["kind"]) in _CUSTOM_KINDS:
            continue
        for version in _KUBERNETES_VERSIONS:
            kubernetes_validate.validate(item, version, strict=True)
        checked += 1
    assert checked >= len(find(objects, "Deployment")) > 0


def test_every_biometrics_variable_is_a_setting_that_reaches_its_field(
    apps: dict[str, _App],
) -> None:
    for app in apps.values():
        variables = {
            name: text for name, text in app.env.items() if name.startswith(f"{ENV_PREFIX}_")
        }
        unknown = [name for name in variables if setting_path(name) is None]
        assert not unknown, f"{app.service}: no such setting: {unknown}"
        for variable, text in variables.items():
            path = setting_path(variable)
            assert path is not None
            assert _field(app.settings, path) == _parsed(text), f"{app.service}: {variable}"


def test_the_config_maps_and_secrets_hold_settings_only_and_secrets_only_in_secrets(
    objects: list[Manifest], apps: dict[str, _App]
) -> None:
    for app in apps.values():
        for source in env_sources(app.deployment, objects):
            entries = (
                config_map_data(source) if source["kind"] == "ConfigMap" else secret_data(source)
            )
            where = f"{source['kind']} {source['metadata']['name']}"
            # The loader reads BIOMETRICS_* alone: any other name would be ignored unseen.
            others = [name for name in entries if not name.startswith(f"{ENV_PREFIX}_")]
            assert not others, f"{where}: not a BIOMETRICS_* variable: {others}"
            if source["kind"] == "ConfigMap":
                secrets = [name for name in entries if _is_secret(setting_path(name))]
                assert not secrets, f"{where}: secrets belong in a Secret: {secrets}"


def test_the_kubelets_service_links_add_no_biometrics_variables(
    objects: list[Manifest], apps: dict[str, _App]
) -> None:
    for app in apps.values():
        if app.pod.get("enableServiceLinks") is False:
            continue
        links = {
            f"{service['metadata']['name'].upper().replace('-', '_')}_{suffix}": "tcp://10.0.0.1:80"
            for service in find(objects, "Service")
            for suffix in ("SERVICE_HOST", "SERVICE_PORT", "PORT")
        }
        try:
            load_settings(ROOT, app.env | links)
        except SettingsError as error:
            pytest.fail(f"{app.service}: the Services' links break the settings: {error}")


def test_probes_ask_the_services_own_paths_on_its_configured_port(apps: dict[str, _App]) -> None:
    for app in apps.values():
        assert app.host in _ALL_INTERFACES, f"{app.service} listens on {app.host} only"
        probes = {kind: app.container[kind] for kind in ("livenessProbe", "readinessProbe")}
        if "startupProbe" in app.container:
            probes["startupProbe"] = app.container["startupProbe"]
        for kind, probe in probes.items():
            get = probe["httpGet"]
            assert get["path"] in _PROBE_PATHS, f"{app.service} {kind}: {get['path']}"
            assert _container_port(app.container, get["port"]) == app.port, f"{app.service} {kind}"
        assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz", app.service
        assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz", app.service


def test_prometheus_scrapes_metrics_on_the_configured_port(apps: dict[str, _App]) -> None:
    for app in apps.values():
        annotations = app.deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", app.service
        assert annotations["prometheus.io/path"] in _PROBE_PATHS, app.service
        assert annotations["prometheus.io/path"] == "/metrics", app.service
        assert int(annotations["prometheus.io/port"]) == app.port, app.service


def test_the_service_sends_to_the_producers_http_port(
    objects: list[Manifest], apps: dict[str, _App]
) -> None:
    producer = apps["producer"]
    service = one(objects, "Service", producer.deployment["metadata"]["name"])
    assert _selects(service["spec"]["selector"], producer.deployment)
    for port in service["spec"]["ports"]:
        assert _container_port(producer.container, port["targetPort"]) == producer.port


def test_grace_period_outlasts_the_pause_and_the_shutdown_timeout(apps: dict[str, _App]) -> None:
    for app in apps.values():
        settings = app.settings
        if app.service == "producer":
            # In-flight requests, then the flush of what still awaits acknowledgement.
            shutdown = settings.http.shutdown_timeout_s
            shutdown += settings.producer.delivery_timeout_ms / 1000
        else:
            shutdown = getattr(settings, app.service).shutdown_timeout_s
        grace = app.pod["terminationGracePeriodSeconds"]
        assert grace > _pre_stop_seconds(app.container) + shutdown, app.service


def test_the_producer_pauses_before_it_stops_taking_requests(apps: dict[str, _App]) -> None:
    producer = apps["producer"]
    readiness = producer.container["readinessProbe"]
    assert _pre_stop_seconds(producer.container) >= readiness["periodSeconds"]


def test_pods_run_as_the_images_user_read_only_and_without_capabilities(
    apps: dict[str, _App],
) -> None:
    uid, gid = image_user()
    for app in apps.values():
        pod = app.pod.get("securityContext", {})
        container = app.container["securityContext"]
        context = pod | container  # the container's own fields win, as in Kubernetes
        assert context.get("runAsNonRoot") is True, app.service
        assert (context.get("runAsUser"), context.get("runAsGroup")) == (uid, gid), app.service
        assert container.get("readOnlyRootFilesystem") is True, app.service
        assert container.get("allowPrivilegeEscalation") is False, app.service
        assert container.get("capabilities") == {"drop": ["ALL"]}, app.service


def test_every_container_has_requests_within_its_limits(apps: dict[str, _App]) -> None:
    for app in apps.values():
        resources = app.container["resources"]
        for resource in ("cpu", "memory"):
            request = _quantity(resources["requests"][resource])
            assert 0 < request <= _quantity(resources["limits"][resource]), app.service


def test_memory_limits_hold_the_measured_memory_and_what_the_settings_let_grow(
    apps: dict[str, _App],
) -> None:
    for app in apps.values():
        settings = app.settings
        grows = settings.http.idempotency_max_bytes
        if app.service != "producer":
            # One replica may own every partition, each with its memory of keys.
            records = getattr(settings, app.service).dedupe_records
            grows = records * settings.kafka.topic_partitions * _DEDUPE_BYTES_A_RECORD
        needed = _MEASURED_RSS_MIB[app.service] * _MIB + grows
        limit = _quantity(app.container["resources"]["limits"]["memory"])
        assert limit > needed, f"{app.service}: {limit / _MIB:.0f} MiB < {needed / _MIB:.0f}"


def test_the_producer_scales_on_cpu_against_its_request(
    objects: list[Manifest], apps: dict[str, _App]
) -> None:
    producer = apps["producer"]
    autoscaler = one(objects, "HorizontalPodAutoscaler", producer.deployment["metadata"]["name"])
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        producer.deployment["metadata"]["name"],
    )
    [metric] = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in producer.container["resources"]["requests"]
    assert "replicas" not in producer.deployment["spec"], "the autoscaler owns the count"


def test_scaled_objects_scale_each_group_on_its_lag_at_most_a_replica_a_partition(
    objects: list[Manifest], apps: dict[str, _App]
) -> None:
    for service in ("consumer", "zones"):
        app = apps[service]
        name = app.deployment["metadata"]["name"]
        scaled = one(objects, "ScaledObject", name)
        assert scaled["apiVersion"] == _KEDA
        spec = scaled["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        assert "replicas" not in app.deployment["spec"], "the ScaledObject owns the count"
        kafka, member = app.settings.kafka, getattr(app.settings, service)
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= kafka.topic_partitions
        [trigger] = spec["triggers"]
        assert trigger["type"] == "kafka"
        metadata = trigger["metadata"]
        assert metadata["topic"] == kafka.topic, service
        assert metadata["consumerGroup"] == member.group_id, service
        assert metadata["bootstrapServers"] == kafka.bootstrap_servers, service
        assert metadata["offsetResetPolicy"] == member.auto_offset_reset, service
        assert metadata.get("allowIdleConsumers", "false") == "false", service
        assert int(metadata["lagThreshold"]) > 0
        _check_login(objects, app.settings, trigger)


def test_each_service_has_a_disruption_budget_that_lets_a_drain_go_on(
    objects: list[Manifest], apps: dict[str, _App]
) -> None:
    minimums = {
        item["spec"]["scaleTargetRef"]["name"]: item["spec"]["minReplicas"]
        for item in find(objects, "HorizontalPodAutoscaler")
    } | {
        item["spec"]["scaleTargetRef"]["name"]: item["spec"]["minReplicaCount"]
        for item in find(objects, "ScaledObject")
    }
    for app in apps.values():
        name = app.deployment["metadata"]["name"]
        budgets = [
            budget
            for budget in find(objects, "PodDisruptionBudget")
            if _selects(budget["spec"]["selector"]["matchLabels"], app.deployment)
        ]
        assert len(budgets) == 1, f"{app.service}: {len(budgets)} budgets"
        spec = budgets[0]["spec"]
        # A budget that allows no eviction at the smallest count stops every node drain.
        assert spec.get("minAvailable", 0) < minimums[name], app.service
        assert spec.get("maxUnavailable", 1) >= 1, app.service


def _check_login(objects: list[Manifest], settings: Settings, trigger: dict[str, Any]) -> None:
    """The trigger logs in as the services do: SASL and TLS as kafka.security_protocol says,
    with the services' own credentials from a Secret of the render."""
    kafka, metadata = settings.kafka, trigger["metadata"]
    tls = "enable" if kafka.security_protocol in ("SSL", "SASL_SSL") else "disable"
    assert metadata.get("tls", "disable") == tls
    if not kafka.security_protocol.startswith("SASL_"):
        assert metadata.get("sasl", "none") == "none"
        return
    assert metadata["sasl"] == _KEDA_SASL[kafka.sasl_mechanism]
    login = one(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    references = {ref["parameter"]: ref for ref in login["spec"]["secretTargetRef"]}
    for parameter in ("username", "password"):
        reference = references[parameter]
        secret = one(objects, "Secret", reference["name"])
        assert reference["key"] == f"{ENV_PREFIX}_KAFKA__SASL_{parameter.upper()}"
        assert reference["key"] in secret.get("data", {}) | secret.get("stringData", {})


def _field(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return [item.get_secret_value() if isinstance(item, SecretStr) else item for item in value]
    return value


def _is_secret(path: tuple[str, ...] | None) -> bool:
    """Whether the settings field at `path` is a secret (SecretStr, or a list of them)."""
    if path is None or len(path) != 2:
        return False
    section: Any = Settings.model_fields[path[0]].annotation
    annotation = section.model_fields[path[1]].annotation
    return annotation in (SecretStr, list[SecretStr])


def _parsed(text: str) -> Any:
    """A variable's value as the settings loader reads it: TOML where it parses, else text."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _container_port(container: dict[str, Any], port: int | str) -> int:
    """A port by number, or by the name the container gives it."""
    if isinstance(port, int):
        return port
    [number] = [item["containerPort"] for item in container["ports"] if item.get("name") == port]
    return int(number)


def _selects(selector: dict[str, str], deployment: Manifest) -> bool:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _pre_stop_seconds(container: dict[str, Any]) -> float:
    """How long the container's preStop hook pauses: its sleep action, or 0 without one."""
    pre_stop = container.get("lifecycle", {}).get("preStop")
    if pre_stop is None:
        return 0.0
    return float(pre_stop["sleep"]["seconds"])


def _quantity(value: str | int) -> float:
    """A Kubernetes quantity (500m, 1, 256Mi) as a number of cores or bytes."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)
