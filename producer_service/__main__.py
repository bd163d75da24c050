"""Run the producer: `python -m producer_service` or `biometrics-producer`."""

from __future__ import annotations

import gc
import logging
import signal

import uvicorn

from producer_service.app import create_app
from shared.runtime.lifecycle import start_service

_log = logging.getLogger("producer_service")

# The first generation is collected after this many new container objects rather than 700: a
# request makes dozens (a task, futures, coroutines), so the default collects every few requests.
_GC_YOUNG_THRESHOLD = 10_000


def settle_memory() -> None:
    """Once started: keep what start-up made out of every later collection, and collect less often.

    Clients, modules and settings live as long as the process; gc.freeze() moves them to a
    generation no collection scans, which saves CPU on every request.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, 50, 50)


def main() -> None:
    """Load the settings, then serve until SIGTERM/SIGINT; exit 2 on bad configuration."""
    settings = start_service("biometrics-producer")
    config = uvicorn.Config(
        create_app(settings, on_started=settle_memory),
        host=settings.http.host,
        port=settings.http.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # ours is http.access_log, one JSON line per request
        log_config=None,
        # Not behind a proxy by default, and no software banner: each costs time on every request.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.http.shutdown_timeout_s),
    )
    # uvicorn re-raises the stop signal once it has shut down gracefully; with these handlers
    # that ends in exit 0, as for the consumer, rather than in death by SIGTERM.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    # A failed start-up (port taken, Kafka refused the SASL login) is logged and exits 3; an
    # unreachable broker is not one: the producer starts and answers 503 until it is reached.
    uvicorn.Server(config).run()
    _log.info("producer exited")


if __name__ == "__main__":
    main()
