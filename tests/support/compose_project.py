"""A compose project under a name of its own, driven by `docker compose` or `docker-compose`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from devtools.docker.command import run_command
from tests.support import ROOT

_TIMEOUT_S = 120.0
_UP_TIMEOUT_S = 900.0


class ComposeProject:
    """compose.yaml (plus $COMPOSE_FILE's overrides) as project `name`, with extra variables."""

    def __init__(self, client: Sequence[str], name: str, variables: Mapping[str, str]) -> None:
        self.client = tuple(client)
        self.name = name
        self.variables = dict(variables)
        self._env = {**os.environ, **variables}

    def up(self) -> None:
        """Build the images and start the stack in the background (Kafka healthy first)."""
        self.run("up", "--build", "--detach", timeout_s=_UP_TIMEOUT_S)

    def scale(self, service: str, instances: int) -> None:
        """Run `instances` containers of the service, leaving the running ones as they are."""
        self.run("up", "--detach", "--no-recreate", "--scale", f"{service}={instances}")

    def stop(self, *services: str) -> None:
        """Stop services (all without arguments): SIGTERM, then SIGKILL after stop_grace_period."""
        self.run("stop", *services)

    def kill(self, *services: str) -> None:
        """SIGKILL the services' containers: no grace, as a crash or a lost machine."""
        self.run("kill", *services)

    def down(self) -> None:
        """Remove the project's containers, network and volumes."""
        self.run("down", "--volumes", "--remove-orphans")

    def logs(self, service: str) -> str:
        """The service's output so far, without colour."""
        return self.run("logs", "--no-color", service)

    def container(self, service: str) -> str:
        """The id of the service's one container."""
        (container,) = self.containers(service)
        return container

    def containers(self, service: str) -> list[str]:
        """The ids of the service's containers."""
        return self.run("ps", "--quiet", service).split()

    def exec(self, container: str, *command: str) -> str:
        """Run a command in a running container (of any client's project); return stdout."""
        return _run(["docker", "exec", container, *command], self._env)

    def leftovers(self) -> list[str]:
        """The project's containers (running or not), volumes and networks that still exist."""
        label = f"label=com.docker.compose.project={self.name}"
        found = []
        for kind, options in (("container", ["--all"]), ("volume", []), ("network", [])):
            command = ["docker", kind, "ls", *options, "--quiet", "--filter", label]
            found += [f"{kind} {name}" for name in _run(command, self._env).split()]
        return found

    def state(self, container: str) -> dict[str, object]:
        """The container's State as `docker inspect` reports it (Status, ExitCode, Health...)."""
        output = _run(["docker", "inspect", "--format", "{{json .State}}", container], self._env)
        state: dict[str, object] = json.loads(output)
        return state

    def run(self, *args: str, timeout_s: float = _TIMEOUT_S) -> str:
        """Run a compose command for this project from the repository root; return stdout."""
        return _run([*self.client, "--project-name", self.name, *args], self._env, timeout_s)


def _run(command: list[str], env: Mapping[str, str], timeout_s: float = _TIMEOUT_S) -> str:
    return run_command(command, timeout_s=timeout_s, cwd=ROOT, env=env)
