"""Run the consumer: `python -m consumer_service` or `biometrics-consumer`; exit codes as
shared.runtime.lifecycle.run_kafka_loop says."""

from __future__ import annotations

from aiokafka.errors import KafkaError

from consumer_service.service import run_consumer
from shared.runtime.lifecycle import run_kafka_loop


def main() -> None:
    """Load the settings and consume until SIGTERM/SIGINT."""
    run_kafka_loop(
        "biometrics-consumer",
        "consumer",
        run_consumer,
        lambda settings: settings.consumer.shutdown_timeout_s,
        unfinished="the batch in hand was not committed and will be re-read",
        # A record that can be neither handled nor set aside (the dead-letter topic refuses it)
        # ends the consumer, uncommitted, in one line.
        fatal=(KafkaError,),
    )


if __name__ == "__main__":
    main()
