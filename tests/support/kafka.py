"""The pytest fixtures of the tests that talk to real servers: an Apache Kafka broker for the
session (from the environment, Docker or a local JVM), a three-node cluster, a Schema Registry,
fresh topics and group ids, a broker of a test's own to kill or freeze. tests/conftest.py
registers them as a plugin."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from devtools import LocalKafka
from devtools.local_cluster import LocalKafkaCluster
from devtools.local_kafka import kafka_version
from devtools.local_registry import LocalRegistry, LocalRegistryError
from devtools.processes import free_port
from shared.kafka.adapter import TopicSpec, delete_topics
from shared.kafka.topics import create_topics_and_wait

_BOOTSTRAP_ENV = "BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS"
# A Confluent-compatible Schema Registry API; unset or "local": a LocalRegistry for the session.
_REGISTRY_ENV = "BIOMETRICS_SCHEMA_REGISTRY__URL"
# Another image configured like apache/kafka, e.g. the one devtools/docker builds where no
# registry is reachable; not BIOMETRICS_-prefixed, as the services would read it as a setting.
_KAFKA_IMAGE_ENV = "TEST_KAFKA_IMAGE"
# Set by CI where it has started an engine: the testcontainers branch must then be taken.
_REQUIRE_DOCKER_ENV = "TEST_REQUIRE_DOCKER"


class TopicFactory(Protocol):
    """Creates a fresh topic and returns its name once its metadata is visible."""

    async def __call__(self, partitions: int = 3) -> str: ...


def broker_source() -> str:
    """Which broker kafka_bootstrap gives, for the report's header."""
    if os.environ.get(_BOOTSTRAP_ENV):
        return f"kafka: ${_BOOTSTRAP_ENV}"
    if _docker_answers():
        return f"kafka: a container of {_kafka_image()} (testcontainers)"
    return "kafka: a local Apache Kafka process (devtools.local_kafka)"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers from $BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS, Docker, or a local JVM."""
    if servers := os.environ.get(_BOOTSTRAP_ENV):
        yield servers
    elif _docker_answers():
        with _kafka_container() as servers:
            yield servers
    elif os.environ.get(_REQUIRE_DOCKER_ENV):
        pytest.fail(f"${_REQUIRE_DOCKER_ENV} is set, but no Docker engine answers", pytrace=False)
    else:
        with _local_kafka() as servers:
            yield servers


@pytest.fixture
async def own_kafka() -> AsyncIterator[LocalKafka]:
    """A broker of the test's own, to kill or freeze; resumed (SIGCONT) before it is stopped."""
    kafka = LocalKafka()
    await asyncio.to_thread(kafka.start)
    try:
        yield kafka
    finally:
        if kafka.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(kafka.pid, signal.SIGCONT)
        await asyncio.to_thread(kafka.stop)


@pytest.fixture(scope="session")
def _session_cluster() -> Iterator[LocalKafkaCluster]:
    with LocalKafkaCluster(nodes=3) as cluster:
        yield cluster


@pytest.fixture
async def kafka_cluster(_session_cluster: LocalKafkaCluster) -> AsyncIterator[LocalKafkaCluster]:
    """Three KRaft nodes shared by the session's tests, each test on topics of its own; after
    each test every node runs again and every partition is in sync (`make_whole`)."""
    yield _session_cluster
    await make_whole(_session_cluster)


async def make_whole(cluster: LocalKafkaCluster) -> None:
    """Thaw every node, start any that is down, and wait until every partition is in sync."""
    for node in cluster.nodes:
        node.thaw()
        if not node.is_running:
            await asyncio.to_thread(node.start)
    await cluster.wait_until_in_sync()


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """The Schema Registry's ccompat base URL: $BIOMETRICS_SCHEMA_REGISTRY__URL, or a local one."""
    url = os.environ.get(_REGISTRY_ENV) or "local"
    if url != "local":
        yield url.rstrip("/")
        return
    registry = LocalRegistry()
    try:
        registry.start()
    except LocalRegistryError as error:
        message = f"no Schema Registry for integration tests: {_REGISTRY_ENV} is unset, and "
        message += f"LocalRegistry could not start one:\n{error}"
        # pytest.fail's own exception, raised from None: the report shows the reason only.
        raise pytest.fail.Exception(message, pytrace=False) from None
    try:
        yield registry.url
    finally:
        registry.stop()


@pytest.fixture
async def topic_factory(kafka_bootstrap: str) -> AsyncIterator[TopicFactory]:
    """Yield make_topic(partitions=3) -> name; the topics it made are deleted afterwards."""
    options = {"bootstrap_servers": kafka_bootstrap}
    created: list[str] = []

    async def make_topic(partitions: int = 3) -> str:
        name = f"test-{uuid.uuid4().hex}"
        created.append(name)
        await create_topics_and_wait(options, [TopicSpec(name, partitions, 1)])
        return name

    try:
        yield make_topic
    finally:
        if created:
            with contextlib.suppress(Exception):
                await delete_topics(options, created)


@pytest.fixture
def group_id() -> str:
    """A consumer group id no other test uses."""
    return f"test-group-{uuid.uuid4().hex}"


def _docker_answers() -> bool:
    """Tell, within a few seconds, whether a Docker engine is reachable."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    # docker-py leaks its socket when the engine does not answer; collect it here, quietly,
    # rather than let the ResourceWarning surface (as an error) in some later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker  # type: ignore[import-untyped]

            client = docker.from_env(timeout=3)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False
        finally:
            gc.collect()


def _kafka_image() -> str:
    return os.environ.get(_KAFKA_IMAGE_ENV) or f"apache/kafka:{kafka_version()}"


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    """Run the official apache/kafka image of the version LocalKafka uses, or $TEST_KAFKA_IMAGE."""
    # testcontainers' KafkaContainer drives Confluent images only (cp-kafka, with its own
    # start scripts), so the Apache image is configured here through its KAFKA_* variables.
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    port = free_port()
    container = DockerContainer(_kafka_image())
    host = container.get_container_host_ip()
    # PLAINTEXT is advertised at the published port, which only the host can reach; the broker
    # talks to itself (the transaction coordinator does) on BROKER, inside the container.
    container.with_bind_ports(9092, port).with_envs(
        KAFKA_NODE_ID="1",
        KAFKA_PROCESS_ROLES="broker,controller",
        KAFKA_LISTENERS=(
            "PLAINTEXT://0.0.0.0:9092,BROKER://localhost:9091,CONTROLLER://localhost:9093"
        ),
        KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://{host}:{port},BROKER://localhost:9091",
        KAFKA_INTER_BROKER_LISTENER_NAME="BROKER",
        KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=(
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT"
        ),
        KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
        # Single-node sizes, as LocalKafka has them: one partition per internal topic keeps
        # the first group join and the first transaction fast on a small machine.
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
        KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="1",
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
        KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS="1",
        KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
        KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
        KAFKA_NUM_PARTITIONS="1",
    ).waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
    with container:
        yield f"{host}:{port}"


@contextlib.contextmanager
def _local_kafka() -> Iterator[str]:
    """Run LocalKafka, failing (never skipping) with the reason when no broker can be had."""
    kafka, reason = LocalKafka(), ""
    try:
        kafka.start()
    except Exception as error:
        reason = str(error)  # failed outside the handler, so the report shows no chained traceback
    if reason:
        pytest.fail(
            f"no Kafka broker for integration tests: {_BOOTSTRAP_ENV} is unset, no Docker "
            f"engine answers, and LocalKafka could not start one:\n{reason}",
            pytrace=False,
        )
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()
