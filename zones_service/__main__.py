"""Run the zone processor: `python -m zones_service` or `biometrics-zones`.

Exit codes: 0 after SIGTERM/SIGINT, the batch in hand committed; 1 when fenced (another instance
owns a partition this one still worked on: it stalled past the session timeout), when a failed
transaction could not be aborted, when a partition's producer could not start, or when shutting
down timed out; 2 on bad configuration; 3 when Kafka refuses the SASL login.
"""

from __future__ import annotations

import logging
from functools import partial

from aiokafka.errors import KafkaError

from shared.kafka import KafkaAuthenticationError
from shared.settings import Settings
from shared.startup import run_service, until_stopped
from zones_service.service import run_zones
from zones_service.transactions import AbortFailedError, FencedError

_log = logging.getLogger("zones_service")


def main() -> None:
    """Load the settings and process until SIGTERM/SIGINT."""
    run_service("biometrics-zones", _serve)


async def _serve(settings: Settings) -> int:
    try:
        counts = await until_stopped(
            partial(run_zones, settings), settings.zones.shutdown_timeout_s
        )
    except TimeoutError:
        _log.error("shutdown timed out; the open transaction is aborted when the instance restarts")
        return 1
    except KafkaAuthenticationError:
        return 3  # shared.kafka has logged which login was refused, and why
    except (FencedError, AbortFailedError, KafkaError) as error:
        _log.error("zone processor stopped by an error", extra={"error": repr(error)})
        return 1
    _log.info("zone processor exited", extra=vars(counts))
    return 0


if __name__ == "__main__":
    main()
