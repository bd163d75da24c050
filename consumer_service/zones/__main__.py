"""Run the zone processor: `python -m consumer_service.zones` or `biometrics-zones`.

Exit codes: 0 after SIGTERM/SIGINT, the batch in hand committed; 1 when fenced by a newer
instance with the same transactional id, when a failed transaction could not be aborted, or when
shutting down timed out; 2 on bad configuration (settings, or an instance without partitions);
3 when Kafka refuses the SASL login.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvloop

from consumer_service.zones.service import NoPartitionsError, run_zones
from consumer_service.zones.transactions import AbortFailedError, FencedError
from shared.kafka import KafkaAuthenticationError
from shared.settings import Settings
from shared.startup import start_service

_log = logging.getLogger("consumer_service.zones")


def main() -> None:
    """Load the settings and process until SIGTERM/SIGINT."""
    settings = start_service("biometrics-zones")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sys.exit(runner.run(_serve(settings)))


async def _serve(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Signals only set the flag: the loop finishes the transaction in hand.
        loop.add_signal_handler(signum, stop.set)
    task = asyncio.create_task(run_zones(settings, stop))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    try:
        async with asyncio.timeout(settings.consumer.shutdown_timeout_s if stop.is_set() else None):
            counts = await task
    except TimeoutError:
        _log.error("shutdown timed out; the open transaction is aborted when the instance restarts")
        return 1
    except NoPartitionsError as error:
        _log.error("no partitions to read", extra={"error": str(error)})
        return 2
    except KafkaAuthenticationError:
        return 3  # shared.kafka has logged which login was refused, and why
    except (FencedError, AbortFailedError) as error:
        _log.error("zone processor stopped by an error", extra={"error": repr(error)})
        return 1
    _log.info("zone processor exited", extra=vars(counts))
    return 0


if __name__ == "__main__":
    main()
