"""Running the tools the images are made with (docker, debootstrap, pip, go, apt-get)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from devtools.docker.errors import DockerError

_TAIL_LINES = 40


def run_command(
    command: list[str],
    *,
    timeout_s: float,
    error: type[DockerError] = DockerError,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: Path | None = None,
) -> str:
    """Run command to completion and return its stdout; raise error with its output's tail."""
    with stdin.open("rb") if stdin else open(os.devnull, "rb") as source:
        try:
            result = subprocess.run(
                command,
                stdin=source,
                capture_output=True,
                cwd=cwd,
                env=env,
                check=False,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as timeout:
            raise error(f"{' '.join(command[:3])} took over {timeout_s:.0f} s") from timeout
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        tail = "\n".join(output.splitlines()[-_TAIL_LINES:])
        raise error(f"{' '.join(command)} exited with {result.returncode}:\n{tail}")
    return result.stdout.decode(errors="replace")
