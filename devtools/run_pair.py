"""Run what `docker compose up` runs, for development: a local Kafka when none is configured (and
a local Schema Registry when schema_registry.url is "local"), then the producer, the consumer and
the zone processor, and a reader of the zone events (devtools.zone_events) so that they show in
the run's output beside the consumed events.

`python -m devtools.run_pair` (or `./dev run`). Ctrl-C or SIGTERM stops the services first, so
the producer flushes and the consumer and the zone processor commit, and the broker last.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack

from devtools.local_kafka import LocalKafka
from devtools.local_registry import LocalRegistry
from devtools.processes import Processes, wait_until_ok
from shared.runtime.settings import SettingsError, load_settings

_SERVICES = ("producer_service", "consumer_service", "zones_service")
_ZONE_EVENTS = "devtools.zone_events"


def main() -> int:
    """Start what is missing, supervise the services, stop everything in order."""
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"run: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with ExitStack() as stack:
        env = dict(os.environ)
        if not settings.kafka.bootstrap_servers:
            _say("no Kafka configured: starting a local Apache Kafka")
            kafka = stack.enter_context(LocalKafka())
            env["BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS"] = kafka.bootstrap_servers
            _say(f"local Kafka on {kafka.bootstrap_servers} (pid {kafka.pid})")
        if settings.schema_registry.url == "local":
            _say("schema_registry.url is local: starting a local Schema Registry (Apicurio)")
            registry = stack.enter_context(LocalRegistry())
            env["BIOMETRICS_SCHEMA_REGISTRY__URL"] = registry.url
            _say(f"local Schema Registry at {registry.url} (pid {registry.pid})")
        since_ms = int(time.time() * 1000)  # the zone events of this run are written after it
        commands = [[sys.executable, "-m", name] for name in _SERVICES]
        commands.append([sys.executable, "-m", _ZONE_EVENTS, "--since-ms", str(since_ms)])
        processes = stack.enter_context(
            Processes(stop_timeout_s=settings.http.shutdown_timeout_s + 5)
        )
        services: list[subprocess.Popen[bytes]] = []
        for command in commands:
            # Their output is the run's: consumed events, zone events and log lines.
            services.append(processes.start(command, env=env, stdout=None))
            _say(f"{command[2]} started (pid {services[-1].pid})")
        url = f"http://{settings.http.host}:{settings.http.port}"

        def alive() -> bool:
            return not stop.is_set() and all(service.poll() is None for service in services)

        if wait_until_ok(f"{url}/readyz", alive=alive, interval_s=0.2):
            _say(
                f"ready: POST {url}/biometrics; consumed events and zone events appear below"
                " as JSON lines"
            )
        elif alive():
            _say(f"the producer is not ready yet (see its log): POST {url}/biometrics answers 503")
        while not stop.wait(0.2):
            if any(service.poll() is not None for service in services):
                _say("a service exited; stopping the others")
                break
        processes.stop_together(services)  # SIGTERM: they flush and commit
        names = [command[2] for command in commands]
        codes = {name: _exit_code(service) for name, service in zip(names, services, strict=True)}
        for name, code in codes.items():
            if code:
                _say(f"{name} exited with {code}")
        return next((code for code in codes.values() if code > 0), 1 if any(codes.values()) else 0)


def _exit_code(service: subprocess.Popen[bytes]) -> int:
    code = service.wait()
    # A service stopped by our own SIGTERM counts as a clean exit.
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


def _say(message: str) -> None:
    print(f"run: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
