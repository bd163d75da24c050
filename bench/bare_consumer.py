"""The consumer ceiling: a bare aiokafka getmany loop, with the consumer service's options,
that does nothing with the records and commits nothing.

`python -m bench.bare_consumer --expect N [--min-seconds S]`, configured by the BIOMETRICS_*
variables. It reads the topic from the start; when it has read all N records before S seconds
have passed it reads them again, so a fast loop is still timed over a useful stretch. Hands back
{"records", "seconds", "passes"}; the clock starts when the first batch arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop
from aiokafka import AIOKafkaConsumer

from bench.handoff import emit
from consumer_service.service import consumer_options
from shared.settings import Settings
from shared.startup import start_service


async def drain(settings: Settings, expect: int, min_seconds: float) -> dict[str, float]:
    """Read `expect` records (again and again until min_seconds); count those after the first
    batch over the time since it arrived."""
    consumer = AIOKafkaConsumer(settings.kafka.topic, **consumer_options(settings))
    await consumer.start()
    first_at: float | None = None
    counted = in_pass = passes = 0
    last_at = time.perf_counter()
    try:
        while True:
            batch = await consumer.getmany(
                timeout_ms=settings.consumer.poll_timeout_ms,
                max_records=settings.consumer.max_poll_records,
            )
            got = sum(len(records) for records in batch.values())
            if not got:
                continue
            last_at = time.perf_counter()
            if first_at is None:
                first_at = last_at
            else:
                counted += got
            in_pass += got
            if in_pass >= expect:
                passes += 1
                in_pass = 0
                if last_at - first_at >= min_seconds:
                    break
                await consumer.seek_to_beginning()
    finally:
        await consumer.stop()
    assert first_at is not None
    return {"records": counted, "seconds": last_at - first_at, "passes": passes}


def main(argv: list[str] | None = None) -> None:
    """Drain the topic, then hand back the count and the time."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_consumer")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--min-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    settings = start_service("bench-bare-consumer")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        emit(runner.run(drain(settings, args.expect, args.min_seconds)))


if __name__ == "__main__":
    main()
