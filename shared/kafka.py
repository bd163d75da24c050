"""What both services say to Kafka: client options from settings, and the topics they share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context

from shared.settings import KafkaSettings

_log = logging.getLogger(__name__)

T = TypeVar("T")


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


async def ensure_topics(kafka: KafkaSettings, names: Sequence[str]) -> list[str]:
    """Create the named topics unless they exist, as the settings say; return those created.

    A topic that exists with another partition count than kafka.topic_partitions is reported
    in the log, not silently accepted (changing it would move keys between partitions).
    """
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    kafka.topic_partitions,
                    kafka.topic_replication_factor,
                    topic_configs=kafka.configs_for(name),
                )
                for name in names
            ]
        )
        created, existing = [], []
        for topic, code, message, *_ in response.topic_errors:
            if code == 0:
                created.append(topic)
            elif for_code(code) is TopicAlreadyExistsError:
                existing.append(topic)
            else:
                raise for_code(code)(f"could not create topic {topic}: {message}")
        if existing:
            _report_partition_mismatches(kafka, await admin.describe_topics(existing))
    finally:
        await admin.close()
    return created


def _report_partition_mismatches(kafka: KafkaSettings, described: list[dict[str, Any]]) -> None:
    for topic in described:
        partitions = len(topic["partitions"])
        if partitions != kafka.topic_partitions:
            _log.error(
                "topic exists with another partition count than configured",
                extra={
                    "topic": topic["topic"],
                    "partitions": partitions,
                    "configured_partitions": kafka.topic_partitions,
                },
            )


async def retry_until_connected(
    connect: Callable[[], Awaitable[T]], kafka: KafkaSettings, what: str
) -> T:
    """Call `connect` until the broker answers, logging each miss; cancel to give up."""
    while True:
        try:
            return await connect()
        except (KafkaConnectionError, ConnectionError) as error:
            reason = str(error) or type(error).__name__
        except KafkaError as error:
            if not error.retriable:
                raise
            reason = str(error) or type(error).__name__
        _log.warning(
            "Kafka is not reachable; retrying",
            extra={"while": what, "reason": reason, "retry_in_s": kafka.connect_retry_s},
        )
        await asyncio.sleep(kafka.connect_retry_s)
