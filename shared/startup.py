"""What both services do first: load the settings, refuse bad ones, switch to JSON logs."""

from __future__ import annotations

import sys

from shared.kafka import KafkaNotConfiguredError, client_options
from shared.logs import configure_logging
from shared.settings import Settings, SettingsError, load_settings


def start_service(program: str) -> Settings:
    """Return the validated settings, or exit 2 with a message naming the bad key."""
    try:
        settings = load_settings()
        client_options(settings.kafka)
    except (SettingsError, KafkaNotConfiguredError) as error:
        print(f"{program}: {error}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.logging.level)
    return settings
