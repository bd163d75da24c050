"""The services as real processes on a three-node KRaft cluster, their topics replicated 3 with
min.insync.replicas 2 through their own settings, while nodes are SIGKILLed, stopped and
restarted under load. One cluster serves the test session; after each test every node runs again
and every partition is in sync. Each test prints its counts (pytest -s)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx2 as httpx
import pytest

from devtools.local_cluster import LocalKafkaCluster
from shared.kafka.adapter import cluster_client, topic_metadata
from shared.kafka.topics import ensure_topics
from tests.support.kafka import make_whole
from tests.support.load import PostingLoad, accepted_in_topic
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess, service_process
from tests.support.recovery import (
    DEFAULT_REQUEST_TIMEOUT_MS,
    DEFAULT_SESSION_TIMEOUT_MS,
    caught_up_s,
    client_reconnected_s,
)
from tests.support.samples import event_body
from tests.support.settings import project_settings, service_env
from tests.support.topics import committed_offsets, fill_topic, wait_until_caught_up
from tests.support.zones import report_exactly_once, zone_bodies

pytestmark = pytest.mark.cluster

PARTITIONS = 3
WORKERS = 8
# The consumer's batch: a restart may re-deliver at most the batch in hand, so keep it small.
MAX_POLL_RECORDS = 50
# A delivery timeout short enough to wait out a few times; the answer's bound has a margin for
# a machine that is busy, not a measure of speed.
DELIVERY_TIMEOUT_S = 5
MARGIN_S = 5

# How long after the kill both consumers get SIGTERM: within the dead node's broker session
# (3 s here), while their fetches from it fail and wait out the retry backoff.
STOP_DELAYS_S = (1.0, 2.0)
# What the services' /metrics say of their rebalances and transactions.
REBALANCES = "biometrics_consumer_rebalances_total"
COMMITTED = "biometrics_zone_transactions_committed_total"
# The services keep the default session and request timeouts: a group that lost a node's
# coordinator catches up within this.
_CAUGHT_UP_S = caught_up_s(DEFAULT_SESSION_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS)


def _env(cluster: LocalKafkaCluster, topic: str, group_id: str, **settings: str) -> dict[str, str]:
    """A service's environment on the cluster: its topics replicated 3, min.insync.replicas 2."""
    replicated = {
        "KAFKA__TOPIC_PARTITIONS": str(PARTITIONS),
        "KAFKA__TOPIC_REPLICATION_FACTOR": "3",
        "KAFKA__TOPIC_CONFIGS__MIN_INSYNC_REPLICAS": "2",
        "CONSUMER__MAX_POLL_RECORDS": str(MAX_POLL_RECORDS),
        "ZONES__MAX_POLL_RECORDS": str(MAX_POLL_RECORDS),
    }
    return service_env(cluster.bootstrap_servers, topic, group_id, **(replicated | settings))


def _names() -> tuple[str, str]:
    """A fresh topic and group id."""
    name = uuid.uuid4().hex
    return f"cluster-{name}", f"cluster-group-{name}"


async def _check_replicated(cluster: LocalKafkaCluster, *topics: str) -> None:
    """Fail unless the services created each topic on all three nodes with min.insync 2.

    No wait: a service starts only once every node knows its topics
    (shared.kafka.topics.ensure_topics).
    """
    for topic in topics:
        replicas = await cluster.replicas(topic)
        configs = await cluster.topic_configs(topic)
        assert set(map(len, replicas.values())) == {3}, (topic, replicas)
        assert configs["min.insync.replicas"] == "2", (topic, configs)


@dataclass
class _Pair:
    """The producer and the consumer on a fresh topic of the cluster, and a client of the
    producer."""

    cluster: LocalKafkaCluster
    topic: str
    group_id: str
    producer: ServiceProcess
    consumer: ServiceProcess
    client: httpx.AsyncClient

    async def check_delivered(self, name: str, load: PostingLoad, faults: int) -> None:
        """Stop the producer (it flushes), wait until the group's lag is 0, stop the consumer;
        then every 202 is in the topic once and in the consumer's log, only 202 and 503 were
        answered, and at most a batch per fault was logged twice.

        The consumer commits after every batch, retrying until the commit succeeds or the group
        has moved on, and reads again only from a new assignment's committed offset: so a record
        is re-delivered only through a rebalance, at most the batch in hand at each. The bound
        is a batch per rebalance (as the consumer's /metrics count them), and per fault at most."""
        bootstrap, topic, group_id = self.cluster.bootstrap_servers, self.topic, self.group_id
        assert await self.producer.finish() == 0
        ends = await wait_until_caught_up(bootstrap, topic, PARTITIONS, group_id, _CAUGHT_UP_S)
        rebalances = int(await self.consumer.metric(REBALANCES)) - 1  # the first is the join
        assert await self.consumer.finish() == 0
        lag = sum(ends.values()) - sum((await committed_offsets(bootstrap, group_id)).values())
        in_topic = await accepted_in_topic(bootstrap, topic, PARTITIONS, load.accepted)
        events = self.consumer.events()
        logged_at = {line["key"]: (line["partition"], line["offset"]) for line in events}
        not_logged = [key for key, at in load.accepted.items() if logged_at.get(key) != at]
        lines_per_record = Counter((line["partition"], line["offset"]) for line in events)
        redelivered = sum(count - 1 for count in lines_per_record.values())
        max_redelivered = min(faults, rebalances) * MAX_POLL_RECORDS
        print(
            f"{name}: answers={dict(load.statuses)}, in topic={in_topic.records}, "
            f"missing={len(in_topic.missing)}, duplicated={len(in_topic.duplicated)}, "
            f"consumer lines={len(events)} for {len(lines_per_record)} records, "
            f"accepted not logged={len(not_logged)}, re-delivered={redelivered} "
            f"(bound {max_redelivered}: {rebalances} rebalances, {faults} faults), lag={lag}"
        )
        assert set(load.statuses) <= {202, 503}, load.statuses
        assert in_topic.missing == []
        assert in_topic.duplicated == []
        assert not_logged == []
        assert redelivered <= max_redelivered
        assert lag == 0


@asynccontextmanager
async def _pair(cluster: LocalKafkaCluster) -> AsyncIterator[_Pair]:
    """Both services started on a fresh topic, which they have created replicated."""
    topic, group_id = _names()
    env = _env(cluster, topic, group_id)
    async with (
        service_process("producer_service", env) as producer,
        service_process("consumer_service", env) as consumer,
        httpx.AsyncClient(base_url=await producer.url(), timeout=60) as client,
    ):
        await consumer.ready(timeout_s=120)
        await _check_replicated(cluster, topic)
        yield _Pair(cluster, topic, group_id, producer, consumer, client)


async def test_a_partition_leader_killed_under_load_loses_and_duplicates_no_accepted_event(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    async with _pair(kafka_cluster) as pair:
        async with PostingLoad(pair.client, WORKERS) as load:
            await load.wait_for_accepted(300)
            victim = await kafka_cluster.leader(pair.topic, 0)
            await asyncio.to_thread(victim.kill)
            at_kill = len(load.accepted)
            # Partition 0 takes events again once a replica on a running node leads it.
            await load.wait_for_accepted(100, partition=0)
        await asyncio.to_thread(victim.start)
        print(f"leader kill: accepted {at_kill} before the kill, {len(load.accepted)} in all")
        await pair.check_delivered("leader kill", load, faults=1)


async def test_a_rolling_restart_under_load_loses_nothing_and_redelivers_a_batch_at_most(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    restarts = len(kafka_cluster.nodes)
    async with _pair(kafka_cluster) as pair:
        async with PostingLoad(pair.client, WORKERS) as load:
            await load.wait_for_accepted(200)
            for node in kafka_cluster.nodes:
                await asyncio.to_thread(node.restart)  # SIGTERM, then started on its data
                await kafka_cluster.wait_until_in_sync()
                await load.wait_for_accepted(100)
        await pair.check_delivered(f"rolling restart of {restarts} nodes", load, restarts)


async def _timed_post(client: httpx.AsyncClient) -> tuple[int, float]:
    started = time.monotonic()
    response = await client.post("/biometrics", json=event_body(readings=1))
    return response.status_code, time.monotonic() - started


async def _until_accepted(client: httpx.AsyncClient, timeout_s: float) -> list[tuple[int, float]]:
    """POST one event after another until one is answered 202; return every answer."""
    answers: list[tuple[int, float]] = []

    async def post() -> int:
        answers.append(await _timed_post(client))
        return answers[-1][0]

    # A 503 can come at once: the interval asks again, not in a tight loop.
    await eventually(post, lambda status: status == 202, timeout_s=timeout_s, awaiting="a 202")
    return answers


async def test_two_nodes_down_answer_503_in_time_and_one_back_202_without_a_restart(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    topic, group_id = _names()
    env = _env(
        kafka_cluster, topic, group_id, PRODUCER__DELIVERY_TIMEOUT_MS=f"{DELIVERY_TIMEOUT_S}000"
    )
    async with (
        service_process("producer_service", env) as producer,
        httpx.AsyncClient(base_url=await producer.url(), timeout=60) as client,
    ):
        await _until_accepted(client, timeout_s=60)
        await _check_replicated(kafka_cluster, topic)
        survivor = await kafka_cluster.leader(topic, 0)
        down = [node for node in kafka_cluster.nodes if node is not survivor]
        for node in down:
            await asyncio.to_thread(node.kill)
        outage: list[tuple[int, float]] = []
        for _ in range(2):  # two rounds of concurrent clients, each waiting out the timeout
            outage += await asyncio.gather(*(_timed_post(client) for _ in range(WORKERS)))
        started = time.monotonic()
        await asyncio.to_thread(down[0].start)
        recovery = await _until_accepted(
            client, timeout_s=client_reconnected_s(DEFAULT_REQUEST_TIMEOUT_MS)
        )
        recovered_in = time.monotonic() - started
        assert producer.process.returncode is None
        assert await producer.finish() == 0
    statuses = Counter(status for status, _ in outage)
    slowest = max(elapsed for _, elapsed in outage + recovery[:-1])
    print(
        f"two of three down: answers={dict(statuses)}, slowest {slowest:.1f} s (delivery "
        f"timeout {DELIVERY_TIMEOUT_S} s); one back: {len(recovery) - 1} more 503 before a 202, "
        f"{recovered_in:.1f} s after the node was started"
    )
    assert set(statuses) == {503}, statuses
    assert {status for status, _ in recovery[:-1]} <= {503}, recovery
    assert slowest < DELIVERY_TIMEOUT_S + MARGIN_S


async def test_the_zone_processor_stays_exactly_once_through_a_transaction_coordinator_kill(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    topic, group_id = _names()
    zones_topic = f"{topic}-zones"
    seed = random.randrange(1 << 32)
    chunks = [zone_bodies(count, seed + i) for i, count in enumerate((1500, 300, 300))]
    env = _env(
        kafka_cluster,
        topic,
        group_id,
        ZONES__TOPIC=zones_topic,
        ZONES__GROUP_ID=group_id,
        ZONES__MAX_POLL_RECORDS="20",
    )
    async with service_process("zones_service", env) as zones:
        await zones.ready(timeout_s=120)
        await _check_replicated(kafka_cluster, topic, zones_topic)
        await fill_topic(bootstrap, topic, chunks[0])
        await zones.until_metric(COMMITTED, 3, timeout_s=120)
        # The coordinator of every transaction (__transaction_state has one partition).
        coordinator = await kafka_cluster.leader("__transaction_state", 0)
        roles = [
            f"{name}[{partition}]"
            for name in (topic, zones_topic, "__consumer_offsets")
            for partition in range(PARTITIONS if name != "__consumer_offsets" else 1)
            if await kafka_cluster.leader(name, partition) is coordinator
        ]
        at_kill = sum((await committed_offsets(bootstrap, group_id)).values())
        await asyncio.to_thread(coordinator.kill)
        await fill_topic(bootstrap, topic, chunks[1])
        await wait_until_caught_up(bootstrap, topic, PARTITIONS, group_id, _CAUGHT_UP_S)
        await asyncio.to_thread(coordinator.start)
        await fill_topic(bootstrap, topic, chunks[2])
        await wait_until_caught_up(bootstrap, topic, PARTITIONS, group_id, _CAUGHT_UP_S)
        transactions = int(await zones.metric(COMMITTED))
        code = await zones.finish()
    print(
        f"zone coordinator kill: {at_kill} of {len(chunks[0])} input events committed at the "
        f"kill (it also led {', '.join(roles) or 'no other partition'}), "
        f"{transactions} transactions, exit {code}"
    )
    assert at_kill < len(chunks[0]), "the kill came after the input was processed"
    assert code == 0
    inputs = [record for chunk in chunks for record in chunk]
    await report_exactly_once(
        "zone coordinator kill", seed, bootstrap, zones_topic, PARTITIONS, inputs
    )


async def test_a_sigterm_during_a_leader_failover_exits_0_and_commits_only_what_was_logged(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    for delay_s in STOP_DELAYS_S:
        await make_whole(kafka_cluster)
        await _stop_during_a_failover(kafka_cluster, delay_s)


async def _stop_during_a_failover(cluster: LocalKafkaCluster, delay_s: float) -> None:
    """Under producer load, SIGKILL the leader of partition 0 and SIGTERM the consumer and the
    zone processor `delay_s` later: each exits 0 (aiokafka's fetcher close lets out the
    CancelledError of a fetch waiting to retry the dead node, aio-libs/aiokafka#647, unless
    stop_consumer absorbs it), and the consumer committed no offset past what it logged."""
    topic, group_id = _names()
    env = _env(
        cluster,
        topic,
        group_id,
        ZONES__TOPIC=f"{topic}-zones",
        ZONES__GROUP_ID=f"{group_id}-zones",
    )
    async with (
        service_process("producer_service", env) as producer,
        service_process("consumer_service", env) as consumer,
        service_process("zones_service", env) as zones,
        httpx.AsyncClient(base_url=await producer.url(), timeout=60) as client,
    ):
        await consumer.ready(timeout_s=120)
        await zones.ready(timeout_s=120)
        async with PostingLoad(client, WORKERS) as load:
            await load.wait_for_accepted(200)
            transactions = await zones.until_metric(COMMITTED, 1, timeout_s=120)
            victim = await cluster.leader(topic, 0)
            await asyncio.to_thread(victim.kill)
            # The delay is the scenario, not a wait for something: both stop mid-failover.
            await asyncio.sleep(delay_s)
            codes = await asyncio.gather(consumer.finish(), zones.finish())
        logged_end = Counter[int]()
        for line in consumer.events():
            logged_end[line["partition"]] = max(logged_end[line["partition"]], line["offset"] + 1)
        committed = await committed_offsets(cluster.bootstrap_servers, group_id)
    print(
        f"stop {delay_s} s after a leader kill: exit codes (consumer, zones) {codes}, "
        f"consumer logged to {dict(logged_end)}, committed {committed}, "
        f"answers={dict(load.statuses)}, {transactions:g} zone transactions before the kill"
    )
    assert codes == [0, 0], (consumer.lines[-5:], consumer.other_output, zones.other_output)
    assert all(offset <= logged_end[p] for p, offset in committed.items()), committed


async def test_topics_are_created_only_once_every_node_knows_them_with_leaders(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    kafka = project_settings(
        kafka={
            "bootstrap_servers": kafka_cluster.bootstrap_servers,
            "topic_partitions": 6,
            "topic_replication_factor": 3,
        }
    ).kafka
    names = [f"known-{uuid.uuid4().hex}" for _ in range(3)]
    # A client per node, connected before, so each is asked at once after ensure_topics.
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                cluster_client({"bootstrap_servers": node.bootstrap_servers})
            )
            for node in kafka_cluster.nodes
        ]
        for node_id in range(1, 4):
            await topic_metadata(clients[node_id - 1], node_id, names)  # the connection is up
        assert sorted(await ensure_topics(kafka, names)) == sorted(names)
        responses = await asyncio.gather(
            *(
                topic_metadata(client, node_id, names)
                for node_id, client in enumerate(clients, start=1)
            )
        )
    unknown = {
        node_id: [
            topic["topic"]
            for topic in response
            if topic["error_code"]
            or len(topic["partitions"]) != 6
            or min((p["leader"] for p in topic["partitions"]), default=-1) < 0
        ]
        for node_id, response in enumerate(responses, start=1)
    }
    print(f"topics unknown to a node right after ensure_topics: {unknown}")
    assert all(missing == [] for missing in unknown.values()), unknown
