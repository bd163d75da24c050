"""Every probe of every service answers within a second in every state, the broker frozen
(SIGSTOP) included: the producer's /readyz turns 503 within a bound, and each /readyz is 200
again once the broker runs on.

The test owns its broker (a LocalKafka it freezes) and runs the producer, the consumer and the
zone processor as real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx2 as httpx

from devtools.local_kafka import LocalKafka
from tests.support.processes import ServiceProcess, service_process
from tests.support.settings import service_env

# Kubernetes' default probe timeout.
PROBE_TIMEOUT_S = 1.0
# How soon after the freeze the producer's /readyz must say 503.
NOT_READY_WITHIN_S = 10.0
# How long the broker stays frozen: past the services' request timeout, so their requests to it
# time out and they try to reconnect while the probes are asked.
FROZEN_FOR_S = 12.0
REQUEST_TIMEOUT_MS = 4000
PATHS = ("/healthz", "/readyz")


@dataclass(frozen=True)
class Answer:
    service: str
    path: str
    status: int
    elapsed_s: float
    at_s: float  # since the freeze


def _resume(kafka: LocalKafka) -> None:
    if kafka.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(kafka.pid, signal.SIGCONT)


@contextlib.contextmanager
def _frozen(kafka: LocalKafka) -> Iterator[None]:
    assert kafka.pid is not None
    os.kill(kafka.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        _resume(kafka)


async def _ask_every_probe(
    client: httpx.AsyncClient, services: dict[str, tuple[str, ServiceProcess]], since: float
) -> list[Answer]:
    """Ask each service's /healthz and /readyz once; fail if one does not answer in time."""
    loop = asyncio.get_running_loop()
    answers = []
    for service, (url, process) in services.items():
        for path in PATHS:
            started = loop.time()
            try:
                response = await client.get(url + path)
            except httpx.TransportError as error:
                raise AssertionError(
                    f"{service}{path} gave no answer within {PROBE_TIMEOUT_S} s "
                    f"({started - since:.1f} s after the freeze): {error!r}; its last lines: "
                    f"{process.lines[-5:]}"
                ) from error
            elapsed = loop.time() - started
            answers.append(Answer(service, path, response.status_code, elapsed, started - since))
    return answers


async def _probe_until(
    client: httpx.AsyncClient,
    services: dict[str, tuple[str, ServiceProcess]],
    since: float,
    done: Callable[[list[Answer]], bool],
    timeout_s: float,
) -> list[Answer]:
    """Ask every probe again and again until `done` holds for the last round; every answer."""
    answers: list[Answer] = []
    async with asyncio.timeout(timeout_s):
        while True:
            round_ = await _ask_every_probe(client, services, since)
            answers += round_
            if done(round_):
                return answers
            await asyncio.sleep(0.2)


def _every_readyz(status: int) -> Callable[[list[Answer]], bool]:
    return lambda answers: all(a.status == status for a in answers if a.path == "/readyz")


async def test_every_probe_answers_within_a_second_while_the_broker_is_frozen(
    own_kafka: LocalKafka,
) -> None:
    topic = "probes-frozen"
    env = service_env(
        own_kafka.bootstrap_servers,
        topic,
        "probes-consumer",
        KAFKA__CONNECT_RETRY_S="0.5",
        KAFKA__REQUEST_TIMEOUT_MS=str(REQUEST_TIMEOUT_MS),
        ZONES__TOPIC=f"{topic}.zones",
        ZONES__GROUP_ID="probes-zones",
    )
    loop = asyncio.get_running_loop()
    async with (
        service_process("producer_service", env) as producer,
        service_process("consumer_service", env) as consumer,
        service_process("zones_service", env) as zones,
        httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client,
    ):
        services = {
            "producer": (await producer.url(), producer),
            "consumer": (await consumer.url(), consumer),
            "zones": (await zones.url(), zones),
        }
        # The zone processor has taken its partitions over (ready): a broker that stops answering
        # while it does ends it (exit 1), which is another test's subject.
        await zones.ready(timeout_s=90)
        await _probe_until(client, services, loop.time(), _every_readyz(200), timeout_s=90)

        with _frozen(own_kafka):
            frozen_at = loop.time()
            frozen = await _probe_until(
                client, services, frozen_at, lambda _: loop.time() - frozen_at > FROZEN_FOR_S, 60
            )
        thawed = await _probe_until(client, services, frozen_at, _every_readyz(200), timeout_s=90)
        codes = await asyncio.gather(producer.finish(), consumer.finish(), zones.finish())

    slowest = max(frozen + thawed, key=lambda answer: answer.elapsed_s)
    producer_readyz = [a for a in frozen if a.service == "producer" and a.path == "/readyz"]
    first_503 = next((a.at_s for a in producer_readyz if a.status == 503), None)
    print(
        f"frozen broker: {len(frozen)} answers while frozen, {len(thawed)} after; slowest "
        f"{slowest.service}{slowest.path} {slowest.elapsed_s * 1000:.0f} ms; producer /readyz "
        f"503 from {first_503} s; not ready while frozen: "
        f"{sorted({a.service for a in frozen if a.path == '/readyz' and a.status != 200})}"
    )
    assert slowest.elapsed_s < PROBE_TIMEOUT_S
    assert all(a.status == 200 for a in frozen + thawed if a.path == "/healthz")
    assert all(a.status in (200, 503) for a in frozen + thawed)
    assert first_503 is not None and first_503 <= NOT_READY_WITHIN_S
    # Once not ready, the producer stays so while the broker is frozen.
    assert all(a.status == 503 for a in producer_readyz if a.at_s >= first_503)
    assert codes == [0, 0, 0]
