"""What every service asks of Kafka first: its topics, a connection, an accepted login."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from shared.aiokafka_adapter import (
    ClusterClient,
    TopicSpec,
    bootstrap_addresses,
    broker_ids,
    close_consumer_connections,
    cluster_client,
    create_topics,
    is_retriable,
    log_in_once,
    refusal_reason,
    topic_metadata,
)
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
    specs = [
        TopicSpec(
            name, kafka.topic_partitions, kafka.topic_replication_factor, kafka.configs_for(name)
        )
        for name in names
    ]
    topics = await create_topics(client_options(kafka), specs)
    _report_partition_mismatches(kafka, topics.existing_partitions)
    await _wait_until_every_broker_knows(kafka, names)
    return topics.created


async def _wait_until_every_broker_knows(kafka: KafkaSettings, names: Sequence[str]) -> None:
    """Wait until every broker's metadata has the topics, each partition with a leader.

    On a cluster the brokers learn of a new topic a moment after the controller. A consumer
    that joins its group meanwhile may be assigned no partitions from metadata without the
    topic, and aiokafka asks again only after metadata_max_age_ms. After the deadline this goes
    on, with a warning.
    """
    unknown: set[str] = set()
    async with cluster_client(client_options(kafka)) as client:
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


async def _unknown_somewhere(client: ClusterClient, names: Sequence[str]) -> set[str]:
    """The topics some reachable broker has no metadata for, or a partition without a leader."""
    unknown: set[str] = set()
    for node_id in broker_ids(client):
        try:
            topics = await topic_metadata(client, node_id, names)
        except KafkaError:
            continue  # a node that is down answers no client either
        for topic in topics:
            partitions = topic["partitions"]
            if topic["error_code"] or not partitions or min(p["leader"] for p in partitions) < 0:
                unknown.add(topic["topic"])
    return unknown


def _report_partition_mismatches(kafka: KafkaSettings, existing: dict[str, int]) -> None:
    for topic, partitions in existing.items():
        if partitions != kafka.topic_partitions:
            _log.error(
                "topic exists with another partition count than configured",
                extra={
                    "topic": topic,
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
            if not is_retriable(error):
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
    for host, port in bootstrap_addresses(kafka.bootstrap_servers):
        try:
            await log_in_once(host, port, options)
        except _REFUSED_LOGIN as error:
            message = (
                f"Kafka authentication failed: {host}:{port} refused the SASL "
                f"{kafka.sasl_mechanism} login ({refusal_reason(error)}); check "
                "kafka.sasl_mechanism, kafka.sasl_username and kafka.sasl_password"
            )
            _log.error(message)
            raise KafkaAuthenticationError(message) from error
        except (OSError, KafkaError, TimeoutError):
            continue
        return


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
        await close_consumer_connections(consumer)
