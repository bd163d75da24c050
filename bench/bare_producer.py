"""The aiokafka ceiling: a bare AIOKafkaProducer with the producer service's own settings
(acks, idempotence, linger, batch size, compression) sending pre-encoded records flat out.

`python -m bench.bare_producer RECORDS_FILE (--seconds S | --count N)`, configured by the
BIOMETRICS_* variables; hands back {"sent", "acked", "failed", "seconds"}. Also fills the
consumer rows' topic.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import uvloop
from aiokafka import AIOKafkaProducer

from bench.handoff import emit
from shared.kafka_options import producer_options
from shared.settings import Settings
from shared.startup import start_service


async def produce(
    settings: Settings, records: list[tuple[bytes, bytes]], seconds: float | None, count: int | None
) -> dict[str, float]:
    """Send records in turn until `seconds` have passed or `count` were sent; wait for acks."""
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    acked = failed = sent = 0

    def tally(future: asyncio.Future[object]) -> None:
        nonlocal acked, failed
        if future.cancelled() or future.exception() is not None:
            failed += 1
        else:
            acked += 1

    try:
        topic = settings.kafka.topic
        started = time.perf_counter()
        deadline = started + seconds if seconds is not None else float("inf")
        limit = count if count is not None else -1
        while sent != limit and time.perf_counter() < deadline:
            key, value = records[sent % len(records)]
            # send() returns once the record is in a batch; it waits only when batches are full.
            future = await producer.send(topic, value, key=key)
            future.add_done_callback(tally)
            sent += 1
        await producer.flush()
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return {"sent": sent, "acked": acked, "failed": failed, "seconds": elapsed}


def read_records(path: Path) -> list[tuple[bytes, bytes]]:
    """The `key<TAB>value` lines of a records file."""
    pairs = []
    for line in path.read_bytes().splitlines():
        key, _, value = line.partition(b"\t")
        pairs.append((key, value))
    return pairs


def main(argv: list[str] | None = None) -> None:
    """Produce, then hand back the tally."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_producer")
    parser.add_argument("records", type=Path)
    limit = parser.add_mutually_exclusive_group(required=True)
    limit.add_argument("--seconds", type=float)
    limit.add_argument("--count", type=int)
    args = parser.parse_args(argv)
    settings = start_service("bench-bare-producer")
    records = read_records(args.records)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(produce(settings, records, args.seconds, args.count))
    emit(result)


if __name__ == "__main__":
    main()
