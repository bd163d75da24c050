"""What both services say to Kafka: client options built from settings, and the topic they share."""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context

from shared.settings import KafkaSettings


class KafkaNotConfiguredError(Exception):
    """No bootstrap servers were configured."""


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection arguments common to every aiokafka client, secrets included."""
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


async def ensure_topic(kafka: KafkaSettings) -> bool:
    """Create the events topic unless it exists; return whether this call created it."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(kafka.topic, kafka.topic_partitions, kafka.topic_replication_factor)]
        )
    finally:
        await admin.close()
    for _topic, code, message, *_ in response.topic_errors:
        if code == 0:
            return True
        error = for_code(code)
        if error is TopicAlreadyExistsError:
            return False
        raise error(f"could not create topic {kafka.topic}: {message}")
    return False
