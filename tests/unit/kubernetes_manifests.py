"""The Kubernetes manifests as a cluster would receive them: each overlay rendered by
`kubectl kustomize`, and a pod's environment as the kubelet builds it from the image, the
ConfigMaps and Secrets it names, and its own `env`."""

from __future__ import annotations

import base64
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT
from tests.support.skips import require

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir() if path.is_dir())
# CI services set CI; .ci/run sets TEST_REQUIRE_KUBECTL.
_REQUIRE_ENVS = ("CI", "TEST_REQUIRE_KUBECTL")
_INSTALL = (
    "kubectl is missing: install it (https://kubernetes.io/docs/tasks/tools/), for instance "
    "`apt-get install kubectl` from the Kubernetes apt repository"
)

Manifest = dict[str, Any]


def render(overlay: str) -> list[Manifest]:
    """`kubectl kustomize` of the overlay, as a list of objects; skips where kubectl is missing
    (fails where CI requires it)."""
    kubectl = shutil.which("kubectl")
    require(kubectl is not None, _INSTALL, required_by=_REQUIRE_ENVS)
    assert kubectl is not None
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [item for item in yaml.safe_load_all(result.stdout) if item]


def find(objects: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    """The objects of a kind, and of that name when one is given."""
    return [
        item
        for item in objects
        if item["kind"] == kind and (name is None or item["metadata"]["name"] == name)
    ]


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    """The one object of that kind and name."""
    found = find(objects, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_environment(deployment: Manifest, objects: list[Manifest]) -> dict[str, str]:
    """The environment of the Deployment's first container, as the kubelet builds it: the
    image's ENV, then envFrom in order, then env (service links are not included)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    variables = image_environment()
    for source in env_sources(deployment, objects):
        variables |= (
            config_map_data(source) if source["kind"] == "ConfigMap" else secret_data(source)
        )
    for variable in container.get("env", []):
        variables[variable["name"]] = variable["value"]
    return variables


def env_sources(deployment: Manifest, objects: list[Manifest]) -> list[Manifest]:
    """The ConfigMaps and Secrets whose every entry the Deployment's first container gets as a
    variable (envFrom), in order."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return [
        one(objects, "ConfigMap", source["configMapRef"]["name"])
        if "configMapRef" in source
        else one(objects, "Secret", source["secretRef"]["name"])
        for source in container.get("envFrom", [])
    ]


def config_map_data(config_map: Manifest) -> dict[str, str]:
    """A ConfigMap's entries."""
    return {key: str(value) for key, value in (config_map.get("data") or {}).items()}


def secret_data(secret: Manifest) -> dict[str, str]:
    """A Secret's entries, decoded."""
    data = {
        key: base64.b64decode(value).decode("utf-8")
        for key, value in (secret.get("data") or {}).items()
    }
    return data | {key: str(value) for key, value in (secret.get("stringData") or {}).items()}


def image_environment(dockerfile: Path = ROOT / "Dockerfile") -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set in the image."""
    variables: dict[str, str] = {}
    for instruction in _instructions(dockerfile):
        if instruction.startswith("ENV "):
            for word in shlex.split(instruction.removeprefix("ENV ")):
                name, _, value = word.partition("=")
                variables[name] = value
    return variables


def image_user(dockerfile: Path = ROOT / "Dockerfile") -> tuple[int, int]:
    """The numeric uid and gid of the Dockerfile's last USER instruction."""
    users = [line.split()[1] for line in _instructions(dockerfile) if line.startswith("USER ")]
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid or uid)


def _instructions(dockerfile: Path) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = dockerfile.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [line.strip() for line in "\n".join(lines).replace("\\\n", " ").splitlines()]
