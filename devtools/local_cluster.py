"""LocalKafkaCluster: three (or n) combined broker+controller KRaft nodes on 127.0.0.1, with a
static quorum, for tests of replication and failover. Each node is a LocalKafka of its own
(ports, data dir, log, a 512 MB heap); any of them can be killed, stopped and restarted
(start() waits with blocking calls: from a coroutine, run it with asyncio.to_thread)."""

from __future__ import annotations

import asyncio
from typing import Any

from devtools.local_kafka import LocalKafka, random_cluster_id
from devtools.processes import StartStop, free_ports
from devtools.server_properties import Quorum
from shared.kafka.adapter import describe_topics, topic_configs


class LocalKafkaCluster(StartStop):
    """n LocalKafka nodes in one cluster: start()/stop(), or a with block."""

    def __init__(self, nodes: int = 3) -> None:
        ports = free_ports(2 * nodes)
        client_ports, controller_ports = ports[:nodes], ports[nodes:]
        voters = {node_id: port for node_id, port in enumerate(controller_ports, start=1)}
        cluster_id = random_cluster_id()
        self.nodes = [
            LocalKafka(
                port=client_ports[index],
                controller_port=controller_ports[index],
                quorum=Quorum(node_id, voters),
                cluster_id=cluster_id,
            )
            for index, node_id in enumerate(voters)
        ]

    @property
    def bootstrap_servers(self) -> str:
        """Every node's PLAINTEXT address, comma-separated."""
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def start(self) -> None:
        """Launch every node, then wait for each: the quorum forms once a majority runs."""
        try:
            for node in self.nodes:
                node.start(wait=False)
            for node in self.nodes:
                node.wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node and remove their data: SIGTERM while a majority of the quorum runs,
        SIGKILL after that."""
        for node in reversed(self.nodes):
            # A broker's controlled shutdown waits for an active controller; without a majority
            # there is none, and SIGTERM would only wait out LocalKafka's stop timeout.
            if 2 * sum(other.is_running for other in self.nodes) <= len(self.nodes):
                node.kill()
            node.stop()

    def node(self, node_id: int) -> LocalKafka:
        """The node with this id (from 1)."""
        return self.nodes[node_id - 1]

    @property
    def _running_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes if node.is_running)

    async def leader(self, topic: str, partition: int) -> LocalKafka:
        """The node that leads a partition now, as the running nodes' metadata says."""
        [described] = await self._describe_topics([topic])
        leaders = {p["partition"]: p["leader"] for p in described["partitions"]}
        leader = leaders.get(partition, -1)
        if leader < 0:
            raise LookupError(f"{topic}[{partition}] has no leader now")
        return self.node(leader)

    async def under_replicated(self) -> list[tuple[str, int]]:
        """The partitions (internal ones included) with fewer in-sync replicas than replicas, or
        no leader, as the running nodes' metadata says."""
        return sorted(
            (topic["topic"], partition["partition"])
            for topic in await self._describe_topics()
            for partition in topic["partitions"]
            if partition["leader"] < 0 or len(partition["isr"]) < len(partition["replicas"])
        )

    async def replicas(self, topic: str) -> dict[int, list[int]]:
        """Each partition of the topic with the ids of the nodes holding a replica of it; empty
        while the node asked does not know the topic yet."""
        [described] = await self._describe_topics([topic])
        return {p["partition"]: sorted(p["replicas"]) for p in described["partitions"]}

    async def topic_configs(self, topic: str) -> dict[str, str]:
        """The topic's configs (name -> value), min.insync.replicas among them; empty while the
        node asked does not know the topic yet."""
        return await topic_configs({"bootstrap_servers": self._running_servers}, topic)

    async def wait_until_in_sync(self, timeout_s: float = 120) -> None:
        """Poll until every node runs and no partition is under-replicated: a restarted node is
        back in the ISR of every partition it holds, so the next may go down."""
        if not all(node.is_running for node in self.nodes):
            raise RuntimeError("a node is down: start it before waiting for the cluster")
        async with asyncio.timeout(timeout_s):
            while True:
                if not await self.under_replicated():
                    return
                await asyncio.sleep(0.25)

    async def _describe_topics(self, topics: list[str] | None = None) -> list[dict[str, Any]]:
        """The metadata of these topics (all, by default) from the running nodes."""
        return await describe_topics({"bootstrap_servers": self._running_servers}, topics)
