"""The zone processor's events/s, transactional or at-least-once (docs/performance.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.clients import emit, run_on_uvloop
from shared.kafka.connecting import started
from shared.kafka.options import transactional_producer_options
from shared.kafka.records import Polled
from shared.kafka.topics import ensure_topics
from shared.runtime.lifecycle import start_service
from shared.runtime.settings import Settings
from zones_service.loop import process_zones
from zones_service.partitions import ClosableProducer, ProducerFactory
from zones_service.service import output_topics, start_transactional_producer, zone_consumer
from zones_service.transactions import BatchingProducer
from zones_service.transform import ZoneTransform


async def measure_zones(settings: Settings, expect: int, *, transactional: bool) -> dict[str, Any]:
    """Process the first `expect` events of kafka.topic, from the first batch to the last commit."""
    kafka = settings.kafka
    await ensure_topics(kafka, [kafka.topic, kafka.dead_letter_topic, settings.zones.topic])
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        if transactional:
            start_producer: ProducerFactory = partial(start_transactional_producer, settings)
        else:
            # One idempotent producer for every partition, its offsets committed by the consumer.
            options = transactional_producer_options(settings, "unused")
            del options["transactional_id"], options["transaction_timeout_ms"]
            producer = BatchingProducer(AIOKafkaProducer(**options), output_topics(settings))
            await started(producer)
            stack.push_async_callback(producer.stop)
            consumers: list[AIOKafkaConsumer] = []

            async def start_producer(tp: TopicPartition) -> ClosableProducer:
                return _CommitAfterAcks(producer, consumers[0])

        consumer, owner = await stack.enter_async_context(zone_consumer(settings, start_producer))
        if not transactional:
            consumers.append(consumer)
        source = _StopAfter(consumer, expect, stop)
        transform = ZoneTransform.from_settings(settings)
        counts = await process_zones(source, owner, transform, stop, settings=settings)
        finished = time.perf_counter()
    seconds = finished - (source.first_batch_at or finished)
    return {
        "mode": "transactional" if transactional else "at-least-once",
        "events": counts.records, "produced": counts.produced, "batches": counts.committed,
        "seconds": round(seconds, 3),
        "events_per_s": round(counts.records / seconds, 1) if seconds else 0.0,
    }  # fmt: skip


class _StopAfter:
    """The consumer, noting the first batch's time and setting stop after `expect` records."""

    def __init__(self, consumer: AIOKafkaConsumer, expect: int, stop: asyncio.Event) -> None:
        self._consumer = consumer
        self._left = expect
        self._stop = stop
        self.first_batch_at: float | None = None

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Polled:
        batch: Polled = await self._consumer.getmany(
            *partitions, timeout_ms=timeout_ms, max_records=max_records
        )
        records = sum(len(partition_records) for partition_records in batch.values())
        if records and self.first_batch_at is None:
            self.first_batch_at = time.perf_counter()
        self._left -= records
        if self._left <= 0:
            self._stop.set()
        return batch


class _CommitAfterAcks:
    """At-least-once through the same loop: the offsets committed by the consumer after the acks."""

    def __init__(self, producer: BatchingProducer, consumer: AIOKafkaConsumer) -> None:
        # Records go straight to the (idempotent, not transactional) producer's batches.
        self.append = producer.append
        self._consumer = consumer

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None:
        await self._consumer.commit(dict(offsets))

    # No transaction to begin, commit or abort; the shared producer is stopped by measure_zones.
    async def begin_transaction(self) -> None: ...
    async def commit_transaction(self) -> None: ...
    async def abort_transaction(self) -> None: ...
    async def stop(self) -> None: ...


def main(argv: list[str] | None = None) -> None:
    """Measure once and hand back the result."""
    parser = argparse.ArgumentParser(prog="python -m bench.zone_throughput")
    parser.add_argument("--expect", type=int, required=True, help="events in kafka.topic")
    parser.add_argument("--at-least-once", action="store_true", help="no transactions")
    args = parser.parse_args(argv)
    settings = start_service("zone-throughput")
    transactional = not args.at_least_once
    emit(run_on_uvloop(measure_zones(settings, args.expect, transactional=transactional)))


if __name__ == "__main__":
    main()
