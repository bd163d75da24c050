"""Questions asked of a starting broker: does it listen, answer metadata, let SASL users in?"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from aiokafka.errors import KafkaError

from devtools.server_properties import HOST, SASL_MECHANISMS
from shared.kafka.adapter import broker_ids, cluster_client

__all__ = ["accepts_connections", "answers_metadata", "logs_in_with_sasl"]


def accepts_connections(port: int) -> bool:
    """Tell whether something listens on 127.0.0.1:port."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


async def answers_metadata(bootstrap_servers: str, timeout_s: float, **options: Any) -> bool:
    """Tell whether the broker answers a metadata request that lists at least one broker."""
    options |= {"request_timeout_ms": max(1000, int(timeout_s * 1000))}
    try:
        async with cluster_client({"bootstrap_servers": bootstrap_servers, **options}) as client:
            return bool(broker_ids(client))
    except KafkaError:
        return False


async def logs_in_with_sasl(
    bootstrap_servers: str, users: Mapping[str, str], timeout_s: float
) -> bool:
    """Tell whether the first user gets metadata with every SASL mechanism (true without users)."""
    for name, password in list(users.items())[:1]:
        for mechanism in SASL_MECHANISMS:
            if not await answers_metadata(
                bootstrap_servers,
                timeout_s,
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mechanism,
                sasl_plain_username=name,
                sasl_plain_password=password,
            ):
                return False
    return True
