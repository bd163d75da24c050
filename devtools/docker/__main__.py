"""Command line for the project's own Docker engine, where none runs (CI):

python -m devtools.docker start    install dockerd if missing, start it, wait until it answers
python -m devtools.docker images   build the local Python, Kafka and Prometheus images unless cached
python -m devtools.docker compose  build Compose v2 (`docker compose`) unless cached
python -m devtools.docker env      print the exports that point docker, compose and the tests
                                   at it: eval "$(python -m devtools.docker env)"
python -m devtools.docker stop     remove its containers and stop dockerd by its PID
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from devtools.docker.compose_plugin import docker_config_dir, ensure_compose_plugin
from devtools.docker.engine import DockerEngine
from devtools.docker.errors import DockerError
from devtools.docker.images import (
    ensure_kafka_image,
    ensure_prometheus_image,
    ensure_python_image,
    kafka_image,
)


def main(argv: list[str] | None = None) -> int:
    """Run one command; report failures as one message and exit code 1."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.docker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("start", "images", "compose", "env", "stop"))
    command = parser.parse_args(argv).command
    engine = DockerEngine()
    try:
        if command == "start":
            _timed("engine start", engine.start)
            print(f"dockerd pid {engine.pid}, {engine.host}, data in {engine.data_root}")
        elif command == "images":
            client = engine.client()
            _timed("python image", lambda: ensure_python_image(client))
            _timed("kafka image", lambda: ensure_kafka_image(client))
            _timed("prometheus image", lambda: ensure_prometheus_image(client))
        elif command == "compose":
            _timed("compose v2", lambda: str(ensure_compose_plugin()))
        elif command == "env":
            for name, value in _environment(engine).items():
                print(f"export {name}={shlex.quote(value)}")
        else:
            _timed("engine stop", engine.stop)
    except DockerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _environment(engine: DockerEngine) -> dict[str, str]:
    return {
        "DOCKER_HOST": engine.host,
        # Where `docker compose` finds the Compose v2 plugin built by `compose`.
        "DOCKER_CONFIG": str(docker_config_dir()),
        # Ryuk, testcontainers' reaper, is an image no registry here serves; the fixture
        # stops its containers itself.
        "TESTCONTAINERS_RYUK_DISABLED": "true",
        # /.dockerenv exists on this machine, which would make testcontainers look for the
        # engine's gateway address instead of the published ports on localhost.
        "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
        "TEST_KAFKA_IMAGE": kafka_image(),
    }


def _timed(what: str, action: object) -> None:
    started = time.monotonic()
    result = action()  # type: ignore[operator]
    suffix = f": {result}" if isinstance(result, str) else ""
    print(f"{what}{suffix} ({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
