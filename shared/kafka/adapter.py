"""The one module that uses aiokafka's undocumented surface; the services call these functions.

aiokafka's API documentation covers AIOKafkaProducer and AIOKafkaConsumer (their methods, not
their attributes), the helpers, the abstract listeners, the errors, the structs and BatchBuilder.
Each function below wraps a name outside that, says in its docstring why no documented API
serves, and has a test (tests/unit/test_aiokafka_adapter.py; tests/integration/
test_aiokafka_adapter.py where only a live client shows it) that fails when a release changes it:

- bootstrap_addresses: aiokafka.conn.collect_hosts
- log_in_once: aiokafka.conn.create_conn
- refusal_reason: BrokerResponseError.description
- is_retriable: KafkaError.retriable
- create_topics: aiokafka.admin.AIOKafkaAdminClient, NewTopic, create_topics (its raw
  CreateTopicsResponse), describe_topics, aiokafka.errors.for_code
- describe_topics: AIOKafkaAdminClient.describe_topics
- delete_topics: AIOKafkaAdminClient.delete_topics
- topic_configs: AIOKafkaAdminClient.describe_configs (its raw DescribeConfigsResponse),
  aiokafka.admin.config_resource.ConfigResource
- committed_offsets: AIOKafkaAdminClient.list_consumer_group_offsets
- cluster_client: aiokafka.AIOKafkaClient (bootstrap, close)
- broker_ids: AIOKafkaClient.cluster.brokers
- topic_metadata: AIOKafkaClient.send, aiokafka.protocol.metadata.MetadataRequest and its
  response's to_object()
- fetch_topic_names: AIOKafkaProducer.client.fetch_all_metadata, ClusterMetadata.topics
- watch_partition_count: AIOKafkaProducer.client.cluster (add_listener, remove_listener,
  partitions_for_topic)
- coordinator_known: AIOKafkaConsumer._coordinator.coordinator_id
- close_consumer_connections: AIOKafkaConsumer._client.close
- retrieve_transaction_errors: AIOKafkaProducer._txn_manager (wait_for_transaction_end,
  _pending_txn_offsets)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.metadata import MetadataRequest

__all__ = [
    "CONNECTION_OPTIONS",
    "ClusterClient",
    "TopicSpec",
    "TopicsCreated",
    "bootstrap_addresses",
    "broker_ids",
    "close_consumer_connections",
    "cluster_client",
    "committed_offsets",
    "coordinator_known",
    "create_topics",
    "delete_topics",
    "describe_topics",
    "fetch_topic_names",
    "is_retriable",
    "log_in_once",
    "refusal_reason",
    "retrieve_transaction_errors",
    "topic_configs",
    "topic_metadata",
    "watch_partition_count",
]


# The low-level client cluster_client yields, for annotations outside this module.
ClusterClient = AIOKafkaClient

# create_conn's keyword arguments that the clients' options carry too.
CONNECTION_OPTIONS = (
    "client_id",
    "request_timeout_ms",
    "ssl_context",
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
)


def bootstrap_addresses(servers: str) -> list[tuple[str, int]]:
    """The (host, port) pairs of a bootstrap_servers string, parsed as aiokafka's clients do.

    Why: the documented clients parse bootstrap_servers only inside; a login check must ask the
    same addresses they do (default port, IPv6 brackets).
    """
    return [(host, port) for host, port, _ in collect_hosts(servers, randomize=False)]


async def log_in_once(host: str, port: int, options: Mapping[str, Any]) -> None:
    """Open one connection to host:port with the clients' options (SASL login included), then
    close it; raise what the connection raises.

    Why: the documented clients report a refused login as "Unable to bootstrap", as they do an
    unreachable broker; only a single connection tells the two apart.
    """
    connection = await create_conn(
        host, port, **{name: options[name] for name in CONNECTION_OPTIONS if name in options}
    )
    connection.close()


def refusal_reason(error: KafkaError) -> str:
    """The broker's own reason for a refused login (it never repeats the password), else the
    error's description.

    Why: aiokafka documents the error classes, not the description each broker error carries.
    """
    if error.args and isinstance(error.args[0], str) and error.args[0]:
        return error.args[0]
    return str(getattr(error, "description", "") or type(error).__name__)


def is_retriable(error: KafkaError) -> bool:
    """Whether aiokafka marks the error as one a retry may cure.

    Why: the documented error classes carry no list of which are retriable; the class
    attribute does.
    """
    return bool(error.retriable)


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its name, partition count, replication factor and configs."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicsCreated:
    """What create_topics did: the topics it created, and the partition count of those that
    existed already."""

    created: list[str]
    existing_partitions: dict[str, int]


async def create_topics(options: Mapping[str, Any], topics: Sequence[TopicSpec]) -> TopicsCreated:
    """Create the topics unless they exist; raise aiokafka's error for any other refusal.

    Why: the admin client is not in aiokafka's API documentation, and its create_topics and
    describe_topics return the broker's raw responses.
    """
    async with _admin(options) as admin:
        response = await admin.create_topics(
            [
                NewTopic(
                    topic.name,
                    topic.partitions,
                    topic.replication_factor,
                    topic_configs=dict(topic.configs),
                )
                for topic in topics
            ]
        )
        created, existing = [], []
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(name)
            elif for_code(code) is TopicAlreadyExistsError:
                existing.append(name)
            else:
                message = rest[0] if rest else None
                raise for_code(code)(f"could not create topic {name}: {message}")
        described = await admin.describe_topics(existing) if existing else []
    partitions = {topic["topic"]: len(topic["partitions"]) for topic in described}
    return TopicsCreated(created, partitions)


async def describe_topics(
    options: Mapping[str, Any], names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The metadata of the named topics (every topic, internal ones included, when names is
    None): per topic a dict of "topic", "error_code" and "partitions" (each with "partition",
    "leader", "replicas" and "isr").

    Why: the documented clients know partitions and leaders only of topics they use, and never
    the replicas or the in-sync set.
    """
    async with _admin(options) as admin:
        described: list[dict[str, Any]] = await admin.describe_topics(
            None if names is None else list(names)
        )
    return described


async def delete_topics(options: Mapping[str, Any], names: Sequence[str]) -> None:
    """Delete the named topics.

    Why: only the (undocumented) admin client deletes topics.
    """
    async with _admin(options) as admin:
        await admin.delete_topics(list(names))


async def topic_configs(options: Mapping[str, Any], topic: str) -> dict[str, str]:
    """The topic's configs (name -> value); empty while the broker asked does not know it.

    Why: only the admin client describes configs, and it returns the broker's raw response.
    """
    async with _admin(options) as admin:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [(_, _, _, _, entries)] = response.resources
    return {name: value for name, value, *_ in entries}


async def committed_offsets(options: Mapping[str, Any], group: str) -> dict[TopicPartition, int]:
    """The group's committed offset of each partition, as the broker reports it.

    Why: a consumer's documented committed() asks for its own group only, and one partition at
    a time; the admin client lists a group's offsets at once.
    """
    async with _admin(options) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in offsets.items()}


@asynccontextmanager
async def _admin(options: Mapping[str, Any]) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def cluster_client(options: Mapping[str, Any]) -> AsyncIterator[AIOKafkaClient]:
    """A bootstrapped low-level client, closed on the way out; for broker_ids and
    topic_metadata.

    Why: the documented clients offer no way to send a request to a broker of one's choosing.
    """
    client = AIOKafkaClient(**options)
    try:
        await client.bootstrap()
        yield client
    finally:
        await client.close()


def broker_ids(client: AIOKafkaClient) -> list[int]:
    """The node ids of the brokers the client's metadata names.

    Why: the documented clients do not name the brokers of the cluster.
    """
    return sorted(broker.nodeId for broker in client.cluster.brokers())


async def topic_metadata(
    client: AIOKafkaClient, node_id: int, names: Sequence[str]
) -> list[dict[str, Any]]:
    """What one broker's metadata says of the named topics, without creating them: per topic a
    dict of "topic", "error_code" and "partitions" (each with "partition" and "leader").

    Why: the documented clients ask any one broker for metadata, never a broker of one's choosing.
    """
    request = MetadataRequest(list(names), allow_auto_topic_creation=False)
    response = await client.send(node_id, request)
    return list(response.to_object()["topics"])


async def fetch_topic_names(producer: AIOKafkaProducer) -> set[str]:
    """The topics a broker names when asked now, over the producer's connections.

    Why: the producer's documented partitions_for answers from the metadata it keeps once it
    has the topic, so it cannot tell whether a broker answers now.
    """
    cluster = await producer.client.fetch_all_metadata()
    return set(cluster.topics())


def watch_partition_count(
    producer: AIOKafkaProducer, topic: str, on_count: Callable[[int], None]
) -> Callable[[], None]:
    """Call on_count with the topic's partition count now and on each metadata update (0 while
    the topic is unknown); return the function that stops the calls.

    Why: the documented send() reads the partition count itself; a caller that places records
    itself (create_batch, send_batch) has no documented way to learn that it changed.
    """
    cluster = producer.client.cluster

    def changed(metadata: Any) -> None:
        partitions = metadata.partitions_for_topic(topic)
        on_count(len(partitions) if partitions else 0)

    cluster.add_listener(changed)
    changed(cluster)
    return lambda: cluster.remove_listener(changed)


def coordinator_known(consumer: AIOKafkaConsumer) -> bool:
    """Whether the started consumer knows its group coordinator.

    Why: aiokafka has no documented word for "the coordinator is reachable"; its group
    coordinator forgets the coordinator's id as soon as a heartbeat or commit finds it gone.
    """
    coordinator = consumer._coordinator
    return coordinator is not None and coordinator.coordinator_id is not None


async def close_consumer_connections(consumer: AIOKafkaConsumer) -> None:
    """Close the consumer's connections, as its stop() does last.

    Why: stop() leaves them open when aiokafka's own fetch cancellation escapes it
    (aio-libs/aiokafka#647), and the documented API has no other way to close them.
    """
    await consumer._client.close()


def retrieve_transaction_errors(producer: AIOKafkaProducer) -> None:
    """Mark as retrieved whatever error the open transaction's futures get from now on.

    Why: send_offsets_to_transaction, commit_transaction and abort_transaction await such a future
    through asyncio.shield, which lets go of it when the caller is cancelled; if the sender fails
    it later (ProducerFenced, say), asyncio logs "Future exception was never retrieved". The
    documented API does not hand these futures out.
    """
    manager = producer._txn_manager
    if manager is None:
        return
    waiters = [manager.wait_for_transaction_end()]
    waiters += [future for _, _, future in manager._pending_txn_offsets]
    for waiter in waiters:
        if waiter is not None:
            waiter.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
