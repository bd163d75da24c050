"""LocalKafkaCluster: three (or n) combined broker+controller KRaft nodes on 127.0.0.1, with a
static quorum, for tests of replication and failover. Each node is a LocalKafka of its own
(ports, data dir, log, a 512 MB heap); any of them can be killed, stopped and restarted
(start() waits with blocking calls: from a coroutine, run it with asyncio.to_thread)."""

from __future__ import annotations

from aiokafka import AIOKafkaClient, TopicPartition

from devtools.local_kafka import LocalKafka, random_cluster_id
from devtools.processes import StartStop, free_ports
from devtools.server_properties import Quorum


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
        """Stop every node and remove their data."""
        for node in reversed(self.nodes):
            node.stop()

    def node(self, node_id: int) -> LocalKafka:
        """The node with this id (from 1)."""
        return self.nodes[node_id - 1]

    async def leader(self, topic: str, partition: int) -> LocalKafka:
        """The node that leads a partition now, as the running nodes' metadata says."""
        running = ",".join(node.bootstrap_servers for node in self.nodes if node.is_running)
        client = AIOKafkaClient(bootstrap_servers=running)
        await client.bootstrap()
        try:
            await client.force_metadata_update()
            leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        finally:
            await client.close()
        if leader is None or leader < 0:
            raise LookupError(f"{topic}[{partition}] has no leader now")
        return self.node(int(leader))
