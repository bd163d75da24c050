"""How long the consumers take to rebuild their memory of idempotency keys (docs/performance.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid

from aiokafka import AIOKafkaProducer, TopicPartition

from bench.context import standard_body
from devtools.local_kafka import LocalKafka
from shared.kafka.adapter import TopicSpec
from shared.kafka.dedupe import Duplicates
from shared.kafka.headers import IDEMPOTENCY_KEY
from shared.kafka.topics import create_topics_and_wait


async def measure(bootstrap: str, partitions: int, records: int) -> None:
    topic = f"dedupe-restore-{uuid.uuid4().hex[:8]}"
    await create_topics_and_wait(
        {"bootstrap_servers": bootstrap}, [TopicSpec(topic, partitions, 1)]
    )
    options = {"linger_ms": 20, "max_batch_size": 512 * 1024, "acks": "all"}
    started = time.perf_counter()
    async with AIOKafkaProducer(bootstrap_servers=bootstrap, **options) as producer:
        value = standard_body(str(uuid.uuid4()))
        sent = []
        for partition in range(partitions):
            for _ in range(records):
                headers = [(IDEMPOTENCY_KEY, str(uuid.uuid4()).encode())]
                sent.append(await producer.send(topic, value, partition=partition, headers=headers))
        await asyncio.gather(*sent)
    print(f"filled {partitions} x {records} records in {time.perf_counter() - started:.1f} s")
    everything = {TopicPartition(topic, p): records for p in range(partitions)}
    for _ in range(3):
        await _time(bootstrap, records, everything)
    await _time(bootstrap, records, {TopicPartition(topic, 0): records})


async def _time(bootstrap: str, records: int, starts: dict[TopicPartition, int]) -> None:
    duplicates = Duplicates(records, 600, {"bootstrap_servers": bootstrap})
    started = time.perf_counter()
    await duplicates.restore(starts)
    seconds = time.perf_counter() - started
    # Each partition's memory is rebuilt from up to `records` records before its start.
    rebuilt = sum(min(start, records) for start in starts.values())
    print(f"rebuilt {len(starts)} partition(s), {rebuilt} records: {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--records", type=int, default=50_000, help="per partition")
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap_servers
        if not bootstrap:
            bootstrap = stack.enter_context(LocalKafka(quick_start=False)).bootstrap_servers
        asyncio.run(measure(bootstrap, args.partitions, args.records))


if __name__ == "__main__":
    main()
