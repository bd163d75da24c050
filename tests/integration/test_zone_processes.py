"""Zone processors as real processes in one consumer group: killed, added, stopped and frozen,
and still every HeartRateZoneReached exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal

import httpx2 as httpx

from tests.support.kafka import TopicFactory
from tests.support.processes import ServiceProcess, service_process
from tests.support.recovery import DEFAULT_REQUEST_TIMEOUT_MS, caught_up_s, member_rejoined_s
from tests.support.settings import service_env
from tests.support.topics import (
    committed_offsets,
    fill_topic,
    wait_until_caught_up,
)
from tests.support.zones import report_exactly_once, zone_bodies

PARTITIONS, BATCH = 6, 20
# The broker's smallest allowed session: a SIGKILLed or frozen instance's partitions move on
# after this long.
SESSION_TIMEOUT_MS = 6000
# What an instance's /metrics say.
OWNED = "biometrics_zone_partitions_owned"
COMMITTED = "biometrics_zone_transactions_committed_total"


async def test_instances_share_partitions_through_kills_a_new_member_and_a_sigterm(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic = await topic_factory(PARTITIONS), await topic_factory(PARTITIONS)
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    chunks = [zone_bodies(300, seed + i) for i in range(6)]
    env = _env(kafka_bootstrap, topic, group_id, zones_topic)
    async with contextlib.AsyncExitStack() as stack:

        async def start() -> ServiceProcess:
            return await stack.enter_async_context(service_process("zones_service", env))

        instances = [await start() for _ in range(3)]
        for instance in instances:
            await instance.until_metric(OWNED, 1)
        kills = []
        for chunk in chunks[:3]:  # three kills of the first instance, at random points
            await fill_topic(kafka_bootstrap, topic, chunk)
            # The pause is the scenario (a kill at a random point of the work), not a wait.
            await asyncio.sleep(rng.uniform(0, 1.0))
            victim = instances[0]
            kills.append(int(await victim.metric(COMMITTED)))
            assert await victim.finish(signal.SIGKILL) == -signal.SIGKILL
            instances[0] = await start()
            await instances[0].until_metric(OWNED, 1)
        instances.append(await start())  # a fourth member joins
        await fill_topic(kafka_bootstrap, topic, chunks[3])
        await asyncio.sleep(rng.uniform(0, 1.0))  # the scenario: a SIGTERM at a random point
        leaving = instances.pop(1)
        assert await leaving.finish(signal.SIGTERM) == 0  # leaves cleanly, batch in hand done
        await fill_topic(kafka_bootstrap, topic, chunks[4])
        await fill_topic(kafka_bootstrap, topic, chunks[5])
        # Dead members' partitions move within the session timeout, then the rest is caught up.
        caught_up = caught_up_s(SESSION_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS)
        await wait_until_caught_up(kafka_bootstrap, topic, PARTITIONS, group_id, caught_up)
        codes = await asyncio.gather(*(instance.finish() for instance in instances))
        assert codes == [0] * len(instances)
    inputs = [record for chunk in chunks for record in chunk]
    print(f"zone scale test: the killed instance had committed {kills} transactions")
    await report_exactly_once(
        "zone scale test", seed, kafka_bootstrap, zones_topic, PARTITIONS, inputs
    )


async def test_a_frozen_instance_is_fenced_when_it_wakes_and_duplicates_nothing(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic = await topic_factory(PARTITIONS), await topic_factory(PARTITIONS)
    seed = random.randrange(1 << 32)
    first, second = zone_bodies(3000, seed), zone_bodies(300, seed + 1)
    env = _env(kafka_bootstrap, topic, group_id, zones_topic)
    async with (
        service_process("zones_service", env) as zombie,
        service_process("zones_service", env) as survivor,
    ):
        half = PARTITIONS // 2
        await zombie.until_metric(OWNED, half, at_most=half)
        await survivor.until_metric(OWNED, half, at_most=half)
        await fill_topic(kafka_bootstrap, topic, first)
        await zombie.until_metric(COMMITTED, 2)
        zombie.process.send_signal(signal.SIGSTOP)  # busy: records fetched and not handled
        frozen_at = sum((await committed_offsets(kafka_bootstrap, group_id)).values())
        # Past the session timeout the group gives every partition to the survivor.
        rejoined_s = member_rejoined_s(SESSION_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS)
        await survivor.until_metric(OWNED, PARTITIONS, timeout_s=rejoined_s)
        await fill_topic(kafka_bootstrap, topic, second)
        zombie.process.send_signal(signal.SIGCONT)
        caught_up = caught_up_s(SESSION_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS)
        await wait_until_caught_up(kafka_bootstrap, topic, PARTITIONS, group_id, caught_up)
        zombie_code = await zombie.finish()  # SIGTERM, unless it has already exited
        fenced = zombie.matching(_fenced)
        assert await survivor.finish() == 0
    print(
        f"zombie test: committed when frozen={frozen_at} of {len(first)}, zombie fenced="
        f"{bool(fenced)}, zombie exit={zombie_code}"
    )
    assert frozen_at < len(first), "the frozen instance had nothing left in hand"
    # Woken with fetched records in hand, its late transaction is refused and it exits 1. If the
    # group's revocation reaches it first, it has no producer left to try with, and rejoins.
    assert (bool(fenced), zombie_code) in ((True, 1), (False, 0))
    await report_exactly_once(
        "zone zombie test", seed, kafka_bootstrap, zones_topic, PARTITIONS, first + second
    )


def _fenced(line: dict[str, object]) -> bool:
    """The one error line a fenced instance ends with (docs/operating.md), by its error field."""
    return line["level"] == "error" and str(line.get("error", "")).startswith("FencedError(")


def _env(bootstrap: str, topic: str, group_id: str, zones_topic: str) -> dict[str, str]:
    return service_env(
        bootstrap,
        topic,
        group_id,
        ZONES__TOPIC=zones_topic,
        ZONES__GROUP_ID=group_id,
        ZONES__MAX_POLL_RECORDS=str(BATCH),
        ZONES__SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS),
    )


async def test_the_probes_show_readiness_partitions_transactions_and_lag(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, zones_topic = await topic_factory(PARTITIONS), await topic_factory(PARTITIONS)
    records = zone_bodies(200, seed=3)
    env = _env(kafka_bootstrap, topic, group_id, zones_topic)
    async with (
        service_process("zones_service", env) as instance,
        httpx.AsyncClient(base_url=await instance.url(), timeout=10) as probes,
    ):
        assert (await probes.get("/healthz")).status_code == 200
        await instance.until_metric(OWNED, PARTITIONS)
        assert (await probes.get("/readyz")).status_code == 200
        await fill_topic(kafka_bootstrap, topic, records)
        await wait_until_caught_up(kafka_bootstrap, topic, PARTITIONS, group_id)
        metrics = (await probes.get("/metrics")).text
        assert await instance.finish() == 0
    assert re.search(rf"^biometrics_zone_partitions_owned {PARTITIONS}\.0$", metrics, re.M)
    assert re.search(r"^biometrics_zone_records_processed_total 200\.0$", metrics, re.M)
    committed = re.search(r"^biometrics_zone_transactions_committed_total (\S+)$", metrics, re.M)
    assert committed is not None and float(committed.group(1)) >= PARTITIONS
    lags = re.findall(
        r'^biometrics_zone_lag\{partition="\d+",topic="[^"]+"\} (\S+)$', metrics, re.M
    )
    assert lags == ["0.0"] * PARTITIONS
