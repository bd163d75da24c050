"""Each undocumented aiokafka name shared.kafka.adapter uses is still there, takes the same
arguments and answers in the same shape; without a broker (tests/integration/
test_aiokafka_adapter.py asks a live one where only it can tell)."""

from __future__ import annotations

import asyncio
import gc
import inspect
from typing import Any

import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import AIOKafkaConnection, create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaConnectionError,
    KafkaError,
    ProducerFenced,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.protocol.admin import (
    CreateTopicsResponse_v1,
    CreateTopicsResponse_v3,
    DescribeConfigsResponse_v0,
    DescribeConfigsResponse_v2,
)
from aiokafka.protocol.metadata import (
    MetadataRequest,
    MetadataRequest_v0,
    MetadataRequest_v4,
    MetadataResponse_v0,
    MetadataResponse_v1,
    MetadataResponse_v5,
)

from shared.kafka.adapter import (
    CONNECTION_OPTIONS,
    bootstrap_addresses,
    close_consumer_connections,
    coordinator_known,
    is_retriable,
    refusal_reason,
    retrieve_transaction_errors,
    watch_partition_count,
)


def test_bootstrap_addresses_are_parsed_as_the_clients_parse_them_in_order() -> None:
    servers = "kafka-1:9093,10.0.0.2:19092,[::1]:9094,kafka-4"
    assert bootstrap_addresses(servers) == [
        ("kafka-1", 9093),
        ("10.0.0.2", 19092),
        ("::1", 9094),
        ("kafka-4", 9092),
    ]


def test_create_conn_takes_every_option_log_in_once_passes_and_returns_a_closable_connection() -> (
    None
):
    options = {name: None for name in CONNECTION_OPTIONS}
    inspect.signature(create_conn).bind("127.0.0.1", 9092, **options)
    assert inspect.iscoroutinefunction(create_conn)
    assert callable(AIOKafkaConnection.close)


def test_a_refusal_reason_is_the_brokers_message_else_the_errors_description() -> None:
    assert refusal_reason(AuthenticationFailedError("invalid credentials")) == (
        "invalid credentials"
    )
    description = SaslAuthenticationFailed.description
    assert isinstance(description, str) and description
    assert refusal_reason(SaslAuthenticationFailed()) == description


def test_retriable_is_read_from_aiokafkas_error_classes() -> None:
    assert is_retriable(KafkaConnectionError())
    assert is_retriable(UnknownTopicOrPartitionError())
    assert not is_retriable(TopicAlreadyExistsError())
    assert not is_retriable(KafkaError())


def test_the_admin_client_creates_and_describes_topics_as_create_topics_calls_it() -> None:
    inspect.signature(NewTopic).bind("t", 3, 1, topic_configs={"retention.ms": "1000"})
    inspect.signature(AIOKafkaAdminClient.create_topics).bind(None, [])
    inspect.signature(AIOKafkaAdminClient.describe_topics).bind(None, ["t"])
    for method in ("start", "close", "create_topics", "describe_topics"):
        assert inspect.iscoroutinefunction(getattr(AIOKafkaAdminClient, method))
    assert for_code(TopicAlreadyExistsError.errno) is TopicAlreadyExistsError
    assert for_code(0).__name__ == "NoError"


def test_the_admin_client_describes_deletes_lists_offsets_and_describes_configs() -> None:
    inspect.signature(AIOKafkaAdminClient.describe_topics).bind(None, None)
    inspect.signature(AIOKafkaAdminClient.delete_topics).bind(None, ["t"])
    inspect.signature(AIOKafkaAdminClient.list_consumer_group_offsets).bind(None, "g")
    resource = ConfigResource(ConfigResourceType.TOPIC, "t")
    inspect.signature(AIOKafkaAdminClient.describe_configs).bind(None, [resource])
    for method in ("delete_topics", "list_consumer_group_offsets", "describe_configs"):
        assert inspect.iscoroutinefunction(getattr(AIOKafkaAdminClient, method))


@pytest.mark.parametrize("response", [DescribeConfigsResponse_v0, DescribeConfigsResponse_v2])
def test_a_describe_configs_response_holds_one_resource_of_five_fields_with_named_entries(
    response: type,
) -> None:
    if response is DescribeConfigsResponse_v0:
        entry: tuple[object, ...] = ("retention.ms", "1000", False, False, False)
    else:
        entry = ("retention.ms", "1000", False, 1, False, [])
    answer = response(throttle_time_ms=0, resources=[(0, None, 2, "t", [entry])])
    [(_, _, _, _, entries)] = answer.resources
    assert [(name, value) for name, value, *_ in entries] == [("retention.ms", "1000")]


@pytest.mark.parametrize("response", [CreateTopicsResponse_v1, CreateTopicsResponse_v3])
def test_create_topics_answers_topic_errors_of_name_code_and_message(response: type) -> None:
    fields = {"topic_errors": [("t", 36, "exists")]}
    if response is CreateTopicsResponse_v3:
        fields["throttle_time_ms"] = 0  # type: ignore[assignment]
    name, code, *rest = response(**fields).topic_errors[0]
    assert (name, code, rest) == ("t", 36, ["exists"])


def test_the_low_level_client_bootstraps_sends_to_a_node_and_lists_brokers() -> None:
    for method in ("bootstrap", "close", "send", "fetch_all_metadata"):
        assert inspect.iscoroutinefunction(getattr(AIOKafkaClient, method))
    inspect.signature(AIOKafkaClient.send).bind(None, 1, MetadataRequest(["t"]))
    assert callable(ClusterMetadata.brokers)


def test_a_metadata_request_names_the_topics_and_never_creates_them() -> None:
    request = MetadataRequest(["a", "b"], allow_auto_topic_creation=False)
    built = request.build(MetadataRequest_v4)
    assert (built.topics, built.allow_auto_topic_creation) == (["a", "b"], False)
    assert request.build(MetadataRequest_v0).topics == ["a", "b"]


@pytest.mark.parametrize("version", [MetadataResponse_v1, MetadataResponse_v5])
def test_a_metadata_response_reads_as_topics_with_error_codes_and_partition_leaders(
    version: type,
) -> None:
    partition: tuple[object, ...] = (0, 0, 1, [1], [1])
    if version is MetadataResponse_v5:
        partition += ([],)
    fields = {"brokers": [(1, "h", 9092, None)], "controller_id": 1}
    fields["topics"] = [(0, "t", False, [partition])]
    if version is MetadataResponse_v5:
        fields["throttle_time_ms"] = 0
        fields["cluster_id"] = "c"
    [topic] = version(**fields).to_object()["topics"]
    assert (topic["topic"], topic["error_code"]) == ("t", 0)
    assert [p["leader"] for p in topic["partitions"]] == [1]


async def test_a_producers_client_fetches_metadata_that_names_its_topics() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
    try:
        assert isinstance(producer.client, AIOKafkaClient)
        assert inspect.iscoroutinefunction(producer.client.fetch_all_metadata)
        assert callable(ClusterMetadata.topics)
    finally:
        await producer.stop()


async def test_a_partition_count_is_reported_now_and_on_each_update_until_unwatched() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
    counts: list[int] = []
    try:
        unwatch = watch_partition_count(producer, "t", counts.append)
        assert counts == [0]
        partitions = [(0, p, 0, [0], [0]) for p in range(3)]
        update = MetadataResponse_v0(brokers=[(0, "h", 9092)], topics=[(0, "t", partitions)])
        producer.client.cluster.update_metadata(update)
        assert counts == [0, 3]
        unwatch()
        producer.client.cluster.update_metadata(update)
        assert counts == [0, 3]
    finally:
        await producer.stop()


async def test_a_consumer_has_no_coordinator_before_it_starts() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", group_id="g")
    try:
        assert consumer._coordinator is None
        assert not coordinator_known(consumer)
    finally:
        await consumer.stop()


async def test_a_consumers_client_is_the_one_its_stop_closes() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    try:
        assert isinstance(consumer._client, AIOKafkaClient)
        await close_consumer_connections(consumer)  # a client never started closes quietly
    finally:
        await consumer.stop()


@pytest.mark.parametrize("retrieved", [True, False])
async def test_a_cancelled_transaction_steps_error_is_retrieved_once_marked(
    retrieved: bool,
) -> None:
    """Without retrieve_transaction_errors asyncio reports the error: the case it exists for."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", transactional_id="t")
        manager = producer._txn_manager
        manager.set_pid_and_epoch(1, 0)
        manager.begin_transaction()
        step = asyncio.ensure_future(
            asyncio.shield(manager.add_offsets_to_txn({TopicPartition("t", 0): 1}, "g"))
        )
        await asyncio.sleep(0)
        step.cancel()  # the caller of send_offsets_to_transaction is cancelled
        await asyncio.gather(step, return_exceptions=True)
        if retrieved:
            retrieve_transaction_errors(producer)
        manager.fatal_error(ProducerFenced())  # the sender fails it afterwards
        await asyncio.sleep(0)
        await producer.stop()
        del producer, manager, step
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    messages = [context["message"] for context in reported]
    assert messages == ([] if retrieved else ["Future exception was never retrieved"] * 2)
