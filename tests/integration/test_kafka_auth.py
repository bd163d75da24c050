"""SASL to Kafka: both services connect with the right credentials, and stop with the wrong ones.

The tests share a broker of their own (a LocalKafka with a SASL_PLAINTEXT listener and one user
who can log in with PLAIN or SCRAM-SHA-512) and run the services as real processes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from devtools.local_kafka import LocalKafka
from devtools.processes import free_port
from shared.kafka.connecting import check_authentication
from tests.support.processes import ServiceProcess, service_process, through_the_pair
from tests.support.samples import event_body
from tests.support.settings import project_settings, service_env

USER, PASSWORD = "alice", "alice-secret"
# A refused login ends start-up at the first attempt; this only bounds a hang.
EXIT_DEADLINE_S = 30


@pytest.fixture(scope="module")
def sasl_kafka() -> Iterator[LocalKafka]:
    with LocalKafka(sasl_users={USER: PASSWORD}) as kafka:
        yield kafka


def _sasl_env(kafka: LocalKafka, mechanism: str, password: str) -> dict[str, str]:
    topic = f"test-{uuid.uuid4().hex}"
    return service_env(
        kafka.sasl_bootstrap_servers,
        topic,
        f"test-group-{uuid.uuid4().hex}",
        kafka__security_protocol="SASL_PLAINTEXT",
        kafka__sasl_mechanism=mechanism,
        kafka__sasl_username=USER,
        kafka__sasl_password=password,
        kafka__topic_partitions="1",
    )


def _is_refusal(line: dict[str, Any]) -> bool:
    """The one line a service logs about a refused login (uvicorn's traceback repeats it)."""
    return (
        line["logger"] == "shared.kafka.connecting"
        and "Kafka authentication failed" in line["message"]
    )


def _output(service: ServiceProcess) -> str:
    return orjson.dumps(service.lines).decode() + b"".join(service.other_output).decode()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
async def test_services_with_the_right_credentials_carry_an_event_from_http_to_the_consumer(
    sasl_kafka: LocalKafka, mechanism: str
) -> None:
    env = _sasl_env(sasl_kafka, mechanism, PASSWORD)
    body = event_body()
    [event], producer, consumer = await through_the_pair(env, [body])
    assert event["key"] == body["deviceId"]
    assert PASSWORD not in _output(producer) + _output(consumer)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
@pytest.mark.parametrize("module", ["producer_service", "consumer_service"])
async def test_wrong_password_ends_start_up_with_exit_3_naming_the_failed_authentication(
    sasl_kafka: LocalKafka, module: str, mechanism: str
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    async with service_process(module, _sasl_env(sasl_kafka, mechanism, wrong)) as service:
        async with asyncio.timeout(EXIT_DEADLINE_S):
            code = await service.process.wait()
        await service.finish()
    assert code == 3, service.lines[-5:]
    [refusal] = service.matching(_is_refusal)
    assert refusal["level"] == "error"
    assert f"refused the SASL {mechanism} login" in refusal["message"]
    assert wrong not in _output(service)
    assert not service.matching(lambda line: "retry_in_s" in line)  # no retry was planned


async def test_mechanism_the_broker_does_not_offer_ends_start_up_with_exit_3(
    sasl_kafka: LocalKafka,
) -> None:
    env = _sasl_env(sasl_kafka, "SCRAM-SHA-256", PASSWORD)
    async with service_process("consumer_service", env) as service:
        async with asyncio.timeout(EXIT_DEADLINE_S):
            code = await service.process.wait()
        await service.finish()
    assert code == 3, service.lines[-5:]
    [refusal] = service.matching(_is_refusal)
    assert "does not support the requested SASL mechanism" in refusal["message"]


async def test_an_unreachable_broker_is_not_taken_for_a_refused_login() -> None:
    kafka = project_settings(
        kafka={
            "bootstrap_servers": f"127.0.0.1:{free_port()}",
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_username": SecretStr(USER),
            "sasl_password": SecretStr(PASSWORD),
        }
    ).kafka
    await check_authentication(kafka)  # returns: retrying an unreachable broker is right
