"""Docker Compose v2, built from its Go module, where Debian offers only docker-compose 1.29.

Users run `docker compose` (v2); building it here lets CI run the stack with the same client.
It is installed as a docker CLI plugin in a DOCKER_CONFIG directory of its own, so it touches
nothing of the user's docker configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from devtools.docker.command import run_command
from devtools.docker.errors import BuildError
from devtools.docker.paths import cache_root

COMPOSE_MODULE = "github.com/docker/compose/v2"
COMPOSE_VERSION = "v2.39.4"
_GO_TIMEOUT_S = 1800.0


def docker_config_dir() -> Path:
    """The DOCKER_CONFIG directory whose cli-plugins holds the built docker-compose."""
    return cache_root() / f"docker-config-compose-{COMPOSE_VERSION}"


def ensure_compose_plugin() -> Path:
    """Build Compose v2 with Go unless already built; return its DOCKER_CONFIG directory."""
    config = docker_config_dir()
    plugin = config / "cli-plugins" / "docker-compose"
    if plugin.is_file():
        return config
    go = shutil.which("go")
    if go is None:
        raise BuildError("`go` is not on PATH; Compose v2 is built from its Go module")
    download = _run([go, "mod", "download", "-json", f"{COMPOSE_MODULE}@{COMPOSE_VERSION}"])
    module_dir = Path(json.loads(download)["Dir"])
    plugin.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="compose-", dir=cache_root()) as work:
        # The module cache is read-only, and `go install module@version` refuses a go.mod
        # with replace or exclude directives, so build a copy as the main module.
        source = Path(work) / "src"
        shutil.copytree(module_dir, source)
        for path in source.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        version = f"-X {COMPOSE_MODULE}/internal.Version={COMPOSE_VERSION}"
        partial = plugin.with_suffix(".partial")
        _run(
            [go, "build", "-trimpath", "-ldflags", f"-s -w {version}", "-o", str(partial), "./cmd"],
            cwd=source,
        )
        partial.rename(plugin)
    return config


def _run(command: list[str], cwd: Path | None = None) -> str:
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    return run_command(command, timeout_s=_GO_TIMEOUT_S, error=BuildError, cwd=cwd, env=env)
