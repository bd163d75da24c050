"""What every service asks of Kafka first: its topics, a connection, an accepted login."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaClient, AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
    for_code,
)
from aiokafka.protocol.metadata import MetadataRequest

from shared.kafka_options import client_options
from shared.registry import RegistryUnavailableError
from shared.settings import KafkaSettings

_log = logging.getLogger(__name__)

T = TypeVar("T")

_METADATA_POLL_S = 0.1

# Logged when stop_consumer absorbed aiokafka's own cancellation: the cluster test counts it.
FETCH_CANCELLED_ON_STOP = (
    "the consumer's fetcher stopped with a cancelled fetch; closing its connections"
)

# What aiokafka raises when the broker refuses a login: no retry can change the answer.
_REFUSED_LOGIN = (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)


class KafkaAuthenticationError(Exception):
    """The broker refused the configured SASL login; the message names settings, never values."""


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
    await _wait_until_every_broker_knows(kafka, names)
    return created


async def _wait_until_every_broker_knows(kafka: KafkaSettings, names: Sequence[str]) -> None:
    """Wait until every broker's metadata has the topics, each partition with a leader.

    On a cluster the brokers learn of a new topic a moment after the controller. A consumer
    that joins its group meanwhile may be assigned no partitions from metadata without the
    topic, and aiokafka asks again only after metadata_max_age_ms (5 minutes): the zone
    processor in the cluster tests sat idle so. After the deadline this goes on, with a warning.
    """
    client = AIOKafkaClient(**client_options(kafka))
    await client.bootstrap()
    unknown: set[str] = set()
    try:
        async with asyncio.timeout(kafka.request_timeout_ms / 1000):
            while True:
                unknown = await _unknown_somewhere(client, names)
                if not unknown:
                    break
                await asyncio.sleep(_METADATA_POLL_S)
    except TimeoutError:
        _log.warning(
            "a broker does not know the topics yet; consumers may be assigned them late",
            extra={"topics": sorted(unknown)},
        )
    finally:
        await client.close()


async def _unknown_somewhere(client: AIOKafkaClient, names: Sequence[str]) -> set[str]:
    """The topics some reachable broker has no metadata for, or a partition without a leader."""
    request = MetadataRequest(list(names), allow_auto_topic_creation=False)
    unknown: set[str] = set()
    for broker in client.cluster.brokers():
        try:
            response = await client.send(broker.nodeId, request)
        except KafkaError:
            continue  # a node that is down answers no client either
        for topic in response.to_object()["topics"]:
            partitions = topic["partitions"]
            if topic["error_code"] or not partitions or min(p["leader"] for p in partitions) < 0:
                unknown.add(topic["topic"])
    return unknown


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
    """Call `connect` until the broker (and the schema registry, if `connect` asks it) answers,
    logging each miss; cancel to give up.

    A refused login is not retried: it raises KafkaAuthenticationError.
    """
    while True:
        unreachable = "Kafka"
        try:
            return await connect()
        except RegistryUnavailableError as error:
            unreachable, reason = "the schema registry", str(error)
        except (KafkaConnectionError, ConnectionError) as error:
            await check_authentication(kafka)
            reason = str(error) or type(error).__name__
        except KafkaError as error:
            if not error.retriable:
                raise
            reason = str(error) or type(error).__name__
        _log.warning(
            f"{unreachable} is not reachable; retrying",
            extra={"while": what, "reason": reason, "retry_in_s": kafka.connect_retry_s},
        )
        await asyncio.sleep(kafka.connect_retry_s)


async def check_authentication(kafka: KafkaSettings) -> None:
    """Raise KafkaAuthenticationError, logged, if a bootstrap server refuses the SASL login.

    aiokafka's clients report a refused login only as "Unable to bootstrap", as they do an
    unreachable broker; after such a failure this asks a single connection, which tells them
    apart. Unreachable brokers, and settings without SASL, pass.
    """
    if not kafka.security_protocol.startswith("SASL_"):
        return
    options = client_options(kafka)
    for host, port, _ in collect_hosts(kafka.bootstrap_servers):
        try:
            connection = await create_conn(
                host,
                port,
                client_id=options["client_id"],
                request_timeout_ms=options["request_timeout_ms"],
                ssl_context=options.get("ssl_context"),
                security_protocol=options["security_protocol"],
                sasl_mechanism=options["sasl_mechanism"],
                sasl_plain_username=options["sasl_plain_username"],
                sasl_plain_password=options["sasl_plain_password"],
            )
        except _REFUSED_LOGIN as error:
            message = (
                f"Kafka authentication failed: {host}:{port} refused the SASL "
                f"{kafka.sasl_mechanism} login ({_refusal(error)}); check kafka.sasl_mechanism, "
                "kafka.sasl_username and kafka.sasl_password"
            )
            _log.error(message)
            raise KafkaAuthenticationError(message) from error
        except (OSError, KafkaError, TimeoutError):
            continue
        connection.close()
        return


def _refusal(error: KafkaError) -> str:
    """The broker's own reason (it never repeats the password), else the error's description."""
    if error.args and isinstance(error.args[0], str) and error.args[0]:
        return error.args[0]
    return str(getattr(error, "description", "") or type(error).__name__)


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """consumer.stop(), without letting out a cancellation that is aiokafka's own.

    Its fetcher's close awaits the fetch tasks it has just cancelled (aio-libs/aiokafka#647): a
    consumer stopped while a fetch from a node that has just died waits to be retried gets their
    CancelledError out of stop(), which then never closes the client's connections. That close
    is done here; a cancellation of the caller itself still propagates.
    """
    task = asyncio.current_task()
    cancelling = task.cancelling() if task is not None else 0
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        if task is None or task.cancelling() > cancelling:
            raise
        _log.info(FETCH_CANCELLED_ON_STOP)
        await consumer._client.close()
