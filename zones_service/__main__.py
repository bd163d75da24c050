"""Run the zone processor: `python -m zones_service` or `biometrics-zones`.

Exit codes as shared.runtime.lifecycle.run_kafka_loop says. 0 after SIGTERM/SIGINT also when some of
the batch in hand's transactions could not commit in time (a node does not answer): they are left
open, so nothing of them is visible or committed, and the partitions' next owner aborts them and
processes their records again (zones_service.loop). 1 also when fenced (another instance owns a
partition this one still worked on: it stalled past the session timeout), when a failed
transaction could not be aborted, or when a partition's producer could not start.
"""

from __future__ import annotations

from aiokafka.errors import KafkaError

from shared.runtime.lifecycle import run_kafka_loop
from zones_service.service import run_zones
from zones_service.transactions import AbortFailedError, FencedError


def main() -> None:
    """Load the settings and process until SIGTERM/SIGINT."""
    run_kafka_loop(
        "biometrics-zones",
        "zone processor",
        run_zones,
        lambda settings: settings.zones.shutdown_timeout_s,
        unfinished="the open transaction is aborted when the instance restarts",
        fatal=(FencedError, AbortFailedError, KafkaError),
    )


if __name__ == "__main__":
    main()
