"""server.properties of the local broker: its listeners, its SASL users and small-machine tuning."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devtools.errors import LocalKafkaError

__all__ = [
    "HOST",
    "SASL_MECHANISMS",
    "Listeners",
    "check_sasl_users",
    "read_listeners",
    "render_server_properties",
    "scram_format_arguments",
]

HOST = "127.0.0.1"
# Every SASL user can log in with either; SCRAM's credentials are written at format time.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-512")
_SASL_LISTENER = "SASL_PLAINTEXT"
# Names and passwords go unquoted into JAAS and StorageTool's --add-scram: keep them plain.
_CREDENTIAL = re.compile(r"[A-Za-z0-9._@+-]+")
_LISTENER = re.compile(r"([A-Z_]+)://[\w.-]+:(\d+)")


@dataclass(frozen=True, slots=True)
class Listeners:
    """The broker's ports: PLAINTEXT (clients, the broker itself), the controller's, and SASL's."""

    port: int
    controller_port: int
    sasl_port: int | None = None


@dataclass(frozen=True)
class Quorum:
    """This node's place in a cluster of combined broker+controller nodes with a static quorum:
    its id, and every voter's id with its controller port."""

    node_id: int
    voters: Mapping[int, int]

    @property
    def replication(self) -> tuple[int, int]:
        """(replication factor, min.insync.replicas) for the cluster's topics: 3 and 2 on three
        nodes, so one node may be down and acks=all writes still succeed."""
        replicas = min(3, len(self.voters))
        return replicas, max(1, replicas - 1)


def check_sasl_users(users: Mapping[str, str]) -> None:
    """Refuse user names or passwords that would need quoting in JAAS or --add-scram."""
    for name, password in users.items():
        if not _CREDENTIAL.fullmatch(name) or not _CREDENTIAL.fullmatch(password):
            raise LocalKafkaError(
                f"SASL user {name!r}: names and passwords may use only letters, digits and ._@+-"
            )


def render_server_properties(
    listeners: Listeners,
    log_dirs: Path,
    sasl_users: Mapping[str, str],
    quorum: Quorum | None = None,
) -> str:
    """A fast-starting KRaft config: a single node, or with `quorum` one node of a cluster; a
    SASL_PLAINTEXT listener when users are given."""
    bound = {"PLAINTEXT": listeners.port, "CONTROLLER": listeners.controller_port}
    if sasl_users:
        if listeners.sasl_port is None:
            raise LocalKafkaError("SASL users were given but no SASL port")
        bound[_SASL_LISTENER] = listeners.sasl_port
    advertised = {name: port for name, port in bound.items() if name != "CONTROLLER"}
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": ",".join(f"{name}://{HOST}:{port}" for name, port in bound.items()),
        "advertised.listeners": ",".join(
            f"{name}://{HOST}:{port}" for name, port in advertised.items()
        ),
        "listener.security.protocol.map": ",".join(
            f"{name}:{'PLAINTEXT' if name == 'CONTROLLER' else name}" for name in bound
        ),
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.bootstrap.servers": f"{HOST}:{listeners.controller_port}",
        "log.dirs": str(log_dirs),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        # One partition instead of 50 makes the first group join fast on a small machine.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # After a kill the controller waits out the dead broker's session (default 9 s)
        # before the restarted broker may register again; keep that wait short.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "3000",
        # Fewer threads and a small cleaner buffer keep a 512 MB heap on 2 cores comfortable.
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        **(_sasl_settings(sasl_users) if sasl_users else {}),
        **(_cluster_settings(quorum) if quorum else {}),
    }
    if quorum is not None:
        del settings["controller.quorum.bootstrap.servers"]  # the voters are static
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def read_listeners(text: str) -> Listeners:
    """Take the ports from the `listeners` line of a server.properties written above."""
    line = next((line for line in text.splitlines() if line.startswith("listeners=")), "")
    found = {name: int(port) for name, port in _LISTENER.findall(line)}
    if "PLAINTEXT" not in found or "CONTROLLER" not in found:
        raise LocalKafkaError(f"server.properties has no usable listeners line: {line!r}")
    return Listeners(found["PLAINTEXT"], found["CONTROLLER"], found.get(_SASL_LISTENER))


def scram_format_arguments(sasl_users: Mapping[str, str]) -> list[str]:
    """StorageTool format arguments that store a SCRAM credential per user in the metadata log."""
    arguments = []
    for name, password in sasl_users.items():
        for mechanism in SASL_MECHANISMS:
            if mechanism.startswith("SCRAM-"):
                arguments += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return arguments


def _sasl_settings(sasl_users: Mapping[str, str]) -> dict[str, str]:
    prefix = f"listener.name.{_SASL_LISTENER.lower()}"
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in sasl_users.items())
    return {
        f"{prefix}.sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
        f"{prefix}.plain.sasl.jaas.config": (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
        ),
        f"{prefix}.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
    }


def _cluster_settings(quorum: Quorum) -> dict[str, str]:
    """A node of a static quorum, its internal topics replicated as the cluster's are."""
    replicas, min_insync = (str(n) for n in quorum.replication)
    voters = ",".join(f"{node}@{HOST}:{port}" for node, port in sorted(quorum.voters.items()))
    return {
        "node.id": str(quorum.node_id),
        "controller.quorum.voters": voters,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_insync,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_insync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_insync,
    }
