"""The compose files read as Compose reads them when the shell sets none of their variables:
`${NAME:-default}` replaced by its default, and override files merged over compose.yaml."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.support import ROOT

# ${NAME:-default}: the one form of interpolation the compose files use, so they run as they are.
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+):-(?P<default>[^}]*)\}")
# Lists Compose merges entry by entry, keyed by the container side, rather than replacing.
_KEYED_LISTS = {"volumes", "ports"}


def load_compose(*names: str) -> dict[str, Any]:
    """The named files, each interpolated with its defaults, merged in order as Compose does."""
    merged: dict[str, Any] = {}
    for name in names:
        text = INTERPOLATION.sub(lambda match: match["default"], (ROOT / name).read_text("utf-8"))
        merged = _merge(merged, yaml.safe_load(text))
    return merged


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as the strings the container sees."""
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def listeners(value: str) -> dict[str, str]:
    """`NAME://host:port,...` as {NAME: "host:port"}."""
    return dict(item.split("://", 1) for item in value.split(","))


def container_ports(service: dict[str, Any]) -> dict[int, int | None]:
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


def _merge(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge: mappings key by key, `volumes` and `ports` entry by entry (keyed by the
    container side), any other value replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = _merge(base[name], value, name) if name in base else value
        return merged
    if key in _KEYED_LISTS and isinstance(base, list) and isinstance(override, list):
        entries = {_container_side(key, entry): entry for entry in [*base, *override]}
        return list(entries.values())
    return override


def _container_side(key: str, entry: str | dict[str, Any]) -> str:
    """A volume's path in the container, or a port's container port."""
    if isinstance(entry, dict):
        return str(entry["target"])
    parts = entry.split("/", 1)[0].split(":") if key == "ports" else entry.split(":")
    return parts[-1] if key == "ports" else parts[min(1, len(parts) - 1)]
