"""The consumer ceiling: a bare aiokafka getmany loop, with the consumer service's options,
that does nothing with the records and commits nothing; and the drain loop it shares with the
minimal consumer (bench/minimal_consumer.py), which does the job's minimum in each batch.

`python -m bench.bare_consumer --expect N [--min-seconds S]`, configured by the BIOMETRICS_*
variables. It reads the topic from the start; when it has read all N records before S seconds
have passed it reads them again, so a fast loop is still timed over a useful stretch. Hands back
{"records", "seconds", "passes"}; the clock starts when the first batch has been handled.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from bench.handoff import emit
from shared.kafka_options import consumer_options
from shared.settings import Settings
from shared.startup import start_service

Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
# What a loop does with each batch before it polls again; nothing, for the ceiling.
Handler = Callable[[AIOKafkaConsumer, Batch], Awaitable[None]]


async def drain(
    settings: Settings, expect: int, min_seconds: float, handle: Handler | None = None
) -> dict[str, float]:
    """Read (and handle) `expect` records, again and again until min_seconds; count those after
    the first batch over the time since it was handled."""
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
            if handle is not None:
                await handle(consumer, batch)
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


def drain_parser(prog: str) -> argparse.ArgumentParser:
    """The arguments every drain loop takes: --expect N and --min-seconds S."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--min-seconds", type=float, default=0.0)
    return parser


def run_drain(
    settings: Settings, args: argparse.Namespace, handle: Handler | None = None
) -> dict[str, float]:
    """drain() on uvloop, with the parsed --expect and --min-seconds."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(drain(settings, args.expect, args.min_seconds, handle))


def main(argv: list[str] | None = None) -> None:
    """Drain the topic, then hand back the count and the time."""
    args = drain_parser("python -m bench.bare_consumer").parse_args(argv)
    settings = start_service("bench-bare-consumer")
    emit(run_drain(settings, args))


if __name__ == "__main__":
    main()
