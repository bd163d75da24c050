"""The zone processor's tests: sample events with the zone events they must give, its settings,
the exactly-once check, and in-process members whose offsets step a test can interrupt."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts.schema import parse_event
from shared.contracts.zones import zone_records
from shared.kafka.batcher import Batch, acknowledged
from shared.runtime.settings import Settings
from tests.support.samples import event_body
from tests.support.settings import Changes, settings_for
from tests.support.topics import RawRecord, Records, read_pairs, wait_until_committed
from zones_service.loop import process_zones
from zones_service.partitions import ClosableProducer, PartitionProducers
from zones_service.service import run_zones, start_transactional_producer, zone_consumer
from zones_service.transactions import TransactionCounts
from zones_service.transform import ZoneTransform


def zone_bodies(count: int, seed: int) -> list[RawRecord]:
    """`count` Biometrics records whose readings fall in every zone, and below."""
    rng = random.Random(seed)
    records: list[RawRecord] = []
    for _ in range(count):
        body = event_body(readings=4, maxHeartRate=rng.randint(150, 200))
        for reading in body["heartRates"]:
            reading["value"] = rng.randint(60, 200)
        records.append((body["deviceId"].encode(), orjson.dumps(body)))
    return records


def expected_zone_records(records: list[RawRecord]) -> Records:
    """The zone records the input must give, computed without Kafka (zone_records, which
    tests/unit/test_zones.py holds to the contract)."""
    return Counter(
        record for _, value in records for record in zone_records(parse_event(value or b""))
    )


def zone_settings(
    bootstrap: str,
    topic: str,
    group_id: str,
    zones_topic: str,
    dead_letter_topic: str,
    **sections: Changes,
) -> Settings:
    """Settings for an in-process zone processor: one partition, small batches, a short pause
    after aborts; other sections' fields replaced as settings_for does."""
    return settings_for(
        bootstrap,
        topic,
        group_id,
        partitions=1,
        kafka={"dead_letter_topic": dead_letter_topic},
        zones={
            "topic": zones_topic,
            "group_id": group_id,
            "retry_backoff_ms": 10,
            "max_poll_records": 10,
        },
        **sections,
    )


async def report_exactly_once(
    name: str,
    seed: int,
    bootstrap: str,
    zones_topic: str,
    partitions: int,
    inputs: list[RawRecord],
) -> None:
    """Print what a read_committed reader finds in the zones topic against what the inputs must
    give, and fail on any duplicate or missing zone event."""
    expected = expected_zone_records(inputs)
    seen = await read_pairs(bootstrap, zones_topic, partitions, "read_committed")
    written = await read_pairs(bootstrap, zones_topic, partitions, "read_uncommitted")
    duplicates, missing = (seen - expected).total(), (expected - seen).total()
    print(
        f"{name} (seed {seed}): input events={len(inputs)}, expected={expected.total()}, "
        f"seen={seen.total()}, duplicates={duplicates}, missing={missing}, "
        f"aborted records (read_uncommitted only)={(written - seen).total()}"
    )
    assert duplicates == 0 and missing == 0


class InterceptedProducer:
    """A partition's transactional producer whose offsets step first awaits `before_offsets(n)`,
    n counting transactions from 1: a test can fail or pause a transaction after it produced.
    The loop sends the offsets while the batches are under way, so the step first waits for the
    transaction's batches to be acknowledged: they are in the topic when `before_offsets` runs."""

    def __init__(
        self, producer: ClosableProducer, before_offsets: Callable[[int], Awaitable[None]]
    ) -> None:
        self.producer = producer
        self._before_offsets = before_offsets
        self._transactions = 0
        self._batches: dict[Batch, None] = {}

    async def begin_transaction(self) -> None:
        self._transactions += 1
        self._batches = {}
        await self.producer.begin_transaction()

    def append(self, topic: str, *args: Any) -> tuple[Batch, int]:
        placed = self.producer.append(topic, *args)
        self._batches[placed[0]] = None
        return placed

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None:
        with contextlib.suppress(Exception):  # a failed batch fails the transaction elsewhere
            await acknowledged(self._batches)
        await self._before_offsets(self._transactions)
        await self.producer.send_offsets_to_transaction(offsets, group_id)

    async def commit_transaction(self) -> None:
        await self.producer.commit_transaction()

    async def abort_transaction(self) -> None:
        await self.producer.abort_transaction()

    async def stop(self) -> None:
        await self.producer.stop()


def zone_member(
    settings: Settings, before_offsets: Callable[[int], Awaitable[None]] | None = None
) -> AbstractAsyncContextManager[tuple[AIOKafkaConsumer, PartitionProducers]]:
    """An in-process member of the zone group (its consumer and its partitions' producers);
    with `before_offsets`, each producer is an InterceptedProducer calling it."""

    async def start(tp: TopicPartition) -> ClosableProducer:
        producer = await start_transactional_producer(settings, tp)
        return producer if before_offsets is None else InterceptedProducer(producer, before_offsets)

    return zone_consumer(settings, start)


async def process(
    settings: Settings,
    consumer: AIOKafkaConsumer,
    owner: PartitionProducers,
    stop: asyncio.Event,
) -> TransactionCounts:
    """The service's loop over what the member owns, until stop."""
    transform = ZoneTransform.from_settings(settings)
    return await process_zones(consumer, owner, transform, stop, settings=settings)


async def run_zones_until_committed(settings: Settings, offsets: dict[int, int]) -> None:
    """Run the zone service (run_zones) until its group has committed `offsets`
    (partition: offset), then stop it as SIGTERM would."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_zones(settings, stop))
    try:
        await wait_until_committed(
            settings.kafka.bootstrap_servers, settings.zones.group_id, offsets
        )
    finally:
        stop.set()
        await task


async def process_aborting_once(
    settings: Settings, fail: int | None, offsets: dict[int, int]
) -> TransactionCounts:
    """An in-process member whose transaction number `fail` (None: none) raises once its zone
    events are produced (so it aborts), run until its group has committed `offsets`; its counts."""

    async def fail_once(transaction: int) -> None:
        if transaction == fail:
            raise RuntimeError("injected after producing")

    stop = asyncio.Event()
    async with zone_member(settings, fail_once) as (consumer, owner):
        task = asyncio.create_task(process(settings, consumer, owner, stop))
        await wait_until_committed(
            settings.kafka.bootstrap_servers, settings.zones.group_id, offsets
        )
        stop.set()
        return await task
