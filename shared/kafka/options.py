"""Every aiokafka client's arguments, built from the settings: the one place that maps settings
to producer, consumer, transactional-producer and admin-client options."""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from shared.runtime.settings import (
    ConsumerSettings,
    KafkaSettings,
    ProducerSettings,
    Settings,
    ZonesSettings,
)

__all__ = [
    "KafkaNotConfiguredError",
    "client_options",
    "consumer_options",
    "dead_letter_producer_options",
    "dedupe_reader_options",
    "producer_options",
    "transactional_producer_options",
    "zone_consumer_options",
]


class KafkaNotConfiguredError(Exception):
    """No bootstrap servers were configured."""


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection arguments common to every aiokafka client (the admin client's), secrets
    included."""
    if not kafka.bootstrap_servers:
        raise KafkaNotConfiguredError(
            "kafka.bootstrap_servers is empty: set BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS, "
            "or start the pair with the run command, which starts a local Kafka"
        )
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=kafka.ssl_cafile or None)
    if kafka.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username.get_secret_value()
        options["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return options


def producer_options(settings: Settings) -> dict[str, Any]:
    """The ingestion producer: [producer] one for one."""
    producer = settings.producer
    return {
        **_batching(producer),
        **client_options(settings.kafka),
        "acks": producer.acks if producer.acks == "all" else int(producer.acks),
        "enable_idempotence": producer.enable_idempotence,
    }


def dead_letter_producer_options(settings: Settings) -> dict[str, Any]:
    """The dead-letter producer: idempotent with acks=all, whatever [producer] says, since a dead
    letter is written before its record's offset is committed."""
    return {**client_options(settings.kafka), "acks": "all", "enable_idempotence": True}


def transactional_producer_options(settings: Settings, transactional_id: str) -> dict[str, Any]:
    """A transactional producer: idempotent with acks=all, whatever [producer] says."""
    return {
        **_batching(settings.producer),
        **client_options(settings.kafka),
        "acks": "all",
        "enable_idempotence": True,
        "transactional_id": transactional_id,
        "transaction_timeout_ms": settings.zones.transaction_timeout_ms,
        "retry_backoff_ms": settings.zones.producer_retry_backoff_ms,
    }


def consumer_options(settings: Settings) -> dict[str, Any]:
    """The event consumer: [consumer] one for one; offsets are committed by hand."""
    return _group_member(settings.kafka, settings.consumer)


def zone_consumer_options(settings: Settings) -> dict[str, Any]:
    """The zone processor's consumer: [zones] one for one, read_committed (input written in
    aborted transactions never becomes zone events); offsets go in its transactions."""
    return {**_group_member(settings.kafka, settings.zones), "isolation_level": "read_committed"}


def dedupe_reader_options(kafka: KafkaSettings, *, read_committed: bool) -> dict[str, Any]:
    """The consumer that rebuilds a member's memory of idempotency keys from its partitions
    (shared.kafka.dedupe): in no group, committing nothing, reading as the member does
    (read_committed for the zone processor)."""
    return {
        **client_options(kafka),
        "group_id": None,
        "enable_auto_commit": False,
        "isolation_level": "read_committed" if read_committed else "read_uncommitted",
    }


def _group_member(kafka: KafkaSettings, member: ConsumerSettings | ZonesSettings) -> dict[str, Any]:
    return {
        **client_options(kafka),
        "group_id": member.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": member.auto_offset_reset,
        "max_poll_records": member.max_poll_records,
        "fetch_min_bytes": member.fetch_min_bytes,
        "fetch_max_wait_ms": member.fetch_max_wait_ms,
        "session_timeout_ms": member.session_timeout_ms,
        # Poison records larger than max_record_bytes must still be fetched, to be set aside.
        "max_partition_fetch_bytes": max(1024 * 1024, member.max_record_bytes * 4),
    }


def _batching(producer: ProducerSettings) -> dict[str, Any]:
    compression = None if producer.compression_type == "none" else producer.compression_type
    return {
        "linger_ms": producer.linger_ms,
        "max_batch_size": producer.max_batch_size,
        "compression_type": compression,
    }
