"""Run the consumer: `python -m consumer_service` or `biometrics-consumer`."""

from __future__ import annotations

import logging
from functools import partial

from consumer_service.service import run_consumer
from shared.kafka import KafkaAuthenticationError
from shared.settings import Settings
from shared.startup import run_service, until_stopped

_log = logging.getLogger("consumer_service")


def main() -> None:
    """Load the settings and consume until SIGTERM/SIGINT; exit 2 on bad configuration."""
    run_service("biometrics-consumer", _serve)


async def _serve(settings: Settings) -> int:
    try:
        handled = await until_stopped(
            partial(run_consumer, settings), settings.consumer.shutdown_timeout_s
        )
    except TimeoutError:
        _log.error("shutdown timed out; the batch in hand was not committed and will be re-read")
        return 1
    except KafkaAuthenticationError:
        return 3  # already logged, in one line; retrying cannot help
    _log.info("consumer exited", extra={"handled": handled})
    return 0


if __name__ == "__main__":
    main()
