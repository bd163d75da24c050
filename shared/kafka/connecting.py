"""Connecting a Kafka client: start it or stop it again, retry until the broker (and the
schema registry) answers, tell a refused login from an unreachable broker, stop a consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

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

from shared.kafka.adapter import (
    bootstrap_addresses,
    close_consumer_connections,
    is_retriable,
    log_in_once,
    refusal_reason,
)
from shared.kafka.options import client_options
from shared.kafka.registry import RegistryUnavailableError
from shared.runtime.settings import KafkaSettings
from shared.runtime.tasks import unless_stopped

__all__ = [
    "KafkaAuthenticationError",
    "check_authentication",
    "retry_until_connected",
    "started",
    "stop_consumer",
    "until_connected",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

# What aiokafka raises when the broker refuses a login: no retry can change the answer.
_REFUSED_LOGIN = (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)


class Startable(Protocol):
    """A client that is started before use and stopped after (aiokafka's clients)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


C = TypeVar("C", bound=Startable)


class KafkaAuthenticationError(Exception):
    """The broker refused the configured SASL login; the message names settings, never values."""


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


async def until_connected(
    stop: asyncio.Event, kafka: KafkaSettings, what: str, connect: Callable[[], Awaitable[T]]
) -> T:
    """retry_until_connected, given up with StoppedError once stop is set."""
    return await unless_stopped(stop, retry_until_connected(connect, kafka, what))


async def started(client: C, stop: Callable[[C], Awaitable[None]] | None = None) -> C:
    """The client, started; if starting fails it is stopped again (by `stop`, if given) and the
    error raised, so no half-started client is left open."""
    try:
        await client.start()
    except BaseException:
        await (client.stop() if stop is None else stop(client))
        raise
    return client


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
        _log.info("the consumer's fetcher stopped with a cancelled fetch; closing its connections")
        await close_consumer_connections(consumer)
