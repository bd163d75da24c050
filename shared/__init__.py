"""What both services share: the event schema, the settings, Kafka client options and logging."""

from shared.kafka import KafkaAuthenticationError, ensure_topics
from shared.kafka_options import KafkaNotConfiguredError, client_options
from shared.logs import configure_logging
from shared.schema import (
    Biometrics,
    encode_key,
    encode_record,
    encode_value,
    parse_event,
    parse_events,
)
from shared.settings import Settings, SettingsError, load_settings

__all__ = [
    "Biometrics",
    "KafkaAuthenticationError",
    "KafkaNotConfiguredError",
    "Settings",
    "SettingsError",
    "client_options",
    "configure_logging",
    "encode_key",
    "encode_record",
    "encode_value",
    "ensure_topics",
    "load_settings",
    "parse_event",
    "parse_events",
]
