"""The local broker's server.properties: listeners, SASL users, and reading the ports back."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.local_kafka import LocalKafka, LocalKafkaError
from devtools.server_properties import (
    Listeners,
    check_sasl_users,
    read_listeners,
    render_server_properties,
    scram_format_arguments,
)


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_without_users_the_broker_has_only_plaintext_and_controller_listeners() -> None:
    text = render_server_properties(Listeners(9092, 9093), Path("/data"), {})
    properties = _properties(text)
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert properties["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert not any("sasl" in key for key in properties)


def test_users_get_a_sasl_listener_with_plain_and_scram_and_a_jaas_entry_each() -> None:
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    properties = _properties(render_server_properties(Listeners(1, 2, 3), Path("/d"), users))
    assert properties["advertised.listeners"].split(",") == [
        "PLAINTEXT://127.0.0.1:1",
        "SASL_PLAINTEXT://127.0.0.1:3",
    ]
    assert "SASL_PLAINTEXT:SASL_PLAINTEXT" in properties["listener.security.protocol.map"]
    prefix = "listener.name.sasl_plaintext"
    assert properties[f"{prefix}.sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-512"
    jaas = properties[f"{prefix}.plain.sasl.jaas.config"]
    assert 'user_alice="alice-secret" user_bob="bob-secret";' in jaas
    assert properties["inter.broker.listener.name"] == "PLAINTEXT"


def test_scram_credentials_are_added_at_format_time_for_every_user() -> None:
    assert scram_format_arguments({"alice": "pw-1"}) == [
        "--add-scram",
        "SCRAM-SHA-512=[name=alice,password=pw-1]",
    ]


def test_ports_are_read_back_including_the_sasl_one() -> None:
    with_sasl = render_server_properties(Listeners(1, 2, 3), Path("/d"), {"a": "b"})
    assert read_listeners(with_sasl) == Listeners(1, 2, 3)
    assert read_listeners(render_server_properties(Listeners(1, 2), Path("/d"), {})) == (
        Listeners(1, 2, None)
    )


@pytest.mark.parametrize("users", [{"al ice": "pw"}, {"alice": 'p"w'}, {"alice": "p,w]"}])
def test_credentials_that_would_need_quoting_are_refused(users: dict[str, str]) -> None:
    with pytest.raises(LocalKafkaError, match="only letters, digits"):
        check_sasl_users(users)


def test_a_broker_without_users_has_no_sasl_address() -> None:
    with pytest.raises(LocalKafkaError, match="without sasl_users"):
        _ = LocalKafka().sasl_bootstrap_servers
