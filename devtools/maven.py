"""run_maven: one `mvn` goal for the tooling that assembles Java programs from Maven Central
(the local Kafka's jars, the local Schema Registry's application)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

_TIMEOUT_S = 900.0


def run_maven(arguments: Sequence[str], purpose: str, error: type[Exception]) -> None:
    """Run `mvn -B -q <arguments>`; raise `error` naming `purpose` if mvn is missing, too slow or
    fails (with the end of its output)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise error(f"`mvn` is not on PATH; install Maven 3.8+ to {purpose}")
    command = [mvn, "-B", "-q", "-Dstyle.color=never", *arguments]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as expired:
        raise error(f"mvn did not finish within {_TIMEOUT_S:.0f} s") from expired
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise error(f"mvn exited with {result.returncode}:\n{tail}")
