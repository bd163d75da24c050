"""The docker command line, pointed at one engine: run, build, import and tag images."""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path

from devtools.docker.command import run_command
from devtools.docker.errors import DockerError

_BUILD_TIMEOUT_S = 1800.0
_COMMAND_TIMEOUT_S = 120.0


class DockerClient:
    """Runs `docker` against the engine at `host` (unix:///path/to/docker.sock)."""

    def __init__(self, host: str) -> None:
        self.host = host

    def run(
        self, *args: str, stdin: Path | None = None, timeout_s: float = _COMMAND_TIMEOUT_S
    ) -> str:
        """Run `docker args...` and return its stdout; raise DockerError with its output."""
        docker = shutil.which("docker")
        if docker is None:
            raise DockerError("`docker` is not on PATH; install Debian's docker.io")
        # The classic builder: the engine's own, and what docker-compose 1.29 uses too.
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}
        return run_command([docker, *args], timeout_s=timeout_s, env=env, stdin=stdin)

    def has_image(self, reference: str) -> bool:
        """Tell whether the engine holds an image with this name:tag."""
        return bool(self.run("images", "--quiet", reference).strip())

    def build(self, context: Path, tag: str, build_args: Mapping[str, str]) -> None:
        """Build context/Dockerfile as tag, without network: every input is in the context."""
        arguments = [f"--build-arg={name}={value}" for name, value in build_args.items()]
        self.run(
            "build", "--network", "none", "--tag", tag, *arguments, str(context),
            timeout_s=_BUILD_TIMEOUT_S,
        )  # fmt: skip

    def import_tarball(self, tarball: Path, tag: str, changes: tuple[str, ...] = ()) -> None:
        """Import a root filesystem tarball as the image tag."""
        arguments = [item for change in changes for item in ("--change", change)]
        self.run("import", *arguments, "-", tag, stdin=tarball, timeout_s=_BUILD_TIMEOUT_S)

    def tag(self, source: str, target: str) -> None:
        """Give the image source a second name."""
        self.run("tag", source, target)

    def remove_other_tags(self, repository: str, keep: Collection[str]) -> None:
        """Untag the images of repository tagged other than keep (builds from older inputs)."""
        tags = self.run("images", "--format", "{{.Tag}}", repository).split()
        stale = [f"{repository}:{tag}" for tag in tags if tag not in {*keep, "<none>"}]
        if stale:
            self.run("rmi", *stale)
