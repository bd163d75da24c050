"""Run the consumer: `python -m consumer_service` or `biometrics-consumer`."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvloop

from consumer_service.service import run_consumer
from shared.kafka import KafkaAuthenticationError
from shared.settings import Settings
from shared.startup import start_service

_log = logging.getLogger("consumer_service")


def main() -> None:
    """Load the settings and consume until SIGTERM/SIGINT; exit 2 on bad configuration."""
    settings = start_service("biometrics-consumer")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sys.exit(runner.run(_serve(settings)))


async def _serve(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Signals only set the flag: the loop finishes and commits the batch in hand.
        loop.add_signal_handler(signum, stop.set)
    task = asyncio.create_task(run_consumer(settings, stop))
    await asyncio.wait(
        [task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    try:
        async with asyncio.timeout(settings.consumer.shutdown_timeout_s if stop.is_set() else None):
            handled = await task
    except TimeoutError:
        _log.error("shutdown timed out; the batch in hand was not committed and will be re-read")
        return 1
    except KafkaAuthenticationError:
        return 3  # already logged, in one line; retrying cannot help
    _log.info("consumer exited", extra={"handled": handled})
    return 0


if __name__ == "__main__":
    main()
