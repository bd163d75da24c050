"""The bare aiokafka clients the services are held to, as helper processes (docs/performance.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.kafka.headers import REQUEST_ID, TRACEPARENT
from shared.kafka.options import client_options, consumer_options, producer_options
from shared.runtime.lifecycle import start_service
from shared.runtime.settings import Settings
from shared.runtime.tracing import carried_headers

Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
# What a drain does with each batch before it polls again; nothing, for the ceiling.
Handler = Callable[[AIOKafkaConsumer, Batch], Awaitable[None]]

_MARKER = "BENCH_RESULT "
# The trace headers the consumer's line carries, by the field it gives each.
_FIELDS = {REQUEST_ID: "request_id", TRACEPARENT: "traceparent"}


def emit(result: dict[str, Any]) -> None:
    """Print the result as the marked line the driver looks for."""
    print(_MARKER + json.dumps(result), flush=True)


def receive(output: str) -> dict[str, Any]:
    """The last marked result in a helper's output; ValueError if there is none."""
    for line in reversed(output.splitlines()):
        if line.startswith(_MARKER):
            result: dict[str, Any] = json.loads(line.removeprefix(_MARKER))
            return result
    raise ValueError(f"no result line in the helper's output:\n{output[-2000:]}")


async def produce(
    settings: Settings,
    records: list[tuple[bytes, bytes]],
    seconds: float | None,
    count: int | None,
    trace_headers: bool = False,
) -> dict[str, float]:
    """Send records in turn until `seconds` have passed or `count` were sent; wait for acks."""
    acked = failed = sent = 0

    def tally(future: asyncio.Future[object]) -> None:
        nonlocal acked, failed
        if future.cancelled() or future.exception() is not None:
            failed += 1
        else:
            acked += 1

    async with AIOKafkaProducer(**producer_options(settings)) as producer:
        topic = settings.kafka.topic
        started = time.perf_counter()
        deadline = started + seconds if seconds is not None else float("inf")
        limit = count if count is not None else -1
        while sent != limit and time.perf_counter() < deadline:
            key, value = records[sent % len(records)]
            headers = carried_headers(None, None, f"bench{sent:016x}") if trace_headers else None
            # send() returns once the record is in a batch; it waits only when batches are full.
            future = await producer.send(topic, value, key=key, headers=headers)
            future.add_done_callback(tally)
            sent += 1
        await producer.flush()
        elapsed = time.perf_counter() - started
    return {"sent": sent, "acked": acked, "failed": failed, "seconds": elapsed}


async def drain(
    settings: Settings, expect: int, min_seconds: float, handle: Handler | None = None
) -> dict[str, float]:
    """Read (and handle) `expect` records, again until min_seconds; the rate after the first."""
    first_at: float | None = None
    counted = in_pass = passes = 0
    last_at = time.perf_counter()
    async with AIOKafkaConsumer(settings.kafka.topic, **consumer_options(settings)) as consumer:
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
    assert first_at is not None
    return {"records": counted, "seconds": last_at - first_at, "passes": passes}


class MinimalJob:
    """The job's minimum for a batch: a JSON line per record written and flushed, then committed."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.lines = 0

    async def __call__(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        lines = [
            orjson.dumps(
                {
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "key": None if record.key is None else record.key.decode(errors="replace"),
                    **{
                        _FIELDS[name]: value.decode(errors="replace")
                        for name, value in record.headers
                        if name in _FIELDS
                    },
                    "event": orjson.loads(record.value),
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for records in batch.values()
            for record in records
        ]
        self._sink.write(b"".join(lines))
        self._sink.flush()
        self.lines += len(lines)
        await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})


async def arrivals(settings: Settings, out: BinaryIO) -> dict[str, Any]:
    """Write each record of kafka.topic's end, read_committed, with the time it became visible."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consumer = AIOKafkaConsumer(
        settings.kafka.topic,
        **client_options(settings.kafka),
        group_id=None,  # every partition, from its end
        auto_offset_reset="latest",
        isolation_level="read_committed",
        # The broker holds an empty fetch this long; a committed transaction does not cut the
        # wait short, so aiokafka's 500 ms would be measured as the processor's latency.
        fetch_max_wait_ms=5,
    )
    records = 0
    async with consumer:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            lines = [
                b"%b\t%.6f\n" % (record.key or b"", now)
                for records_of_partition in batch.values()
                for record in records_of_partition
            ]
            if lines:
                out.write(b"".join(lines))
                out.flush()
                records += len(lines)
    return {"records": records}


def run_on_uvloop(main: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run a helper's coroutine on uvloop, as the services run; return its result."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def main(argv: list[str] | None = None) -> None:
    """Run the chosen client, then hand back its result."""
    parser = argparse.ArgumentParser(prog="python -m bench.clients")
    commands = parser.add_subparsers(dest="command", required=True)
    produce_parser = commands.add_parser("produce")
    produce_parser.add_argument("records", type=Path, help="key<TAB>value lines")
    limit = produce_parser.add_mutually_exclusive_group(required=True)
    limit.add_argument("--seconds", type=float)
    limit.add_argument("--count", type=int)
    produce_parser.add_argument("--trace-headers", action="store_true")
    for name in ("drain", "minimal"):
        drain_parser = commands.add_parser(name)
        drain_parser.add_argument("--expect", type=int, required=True)
        drain_parser.add_argument("--min-seconds", type=float, default=0.0)
    drain_parser.add_argument("--sink", type=Path, required=True)  # minimal's
    commands.add_parser("arrivals").add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = start_service(f"bench-{args.command}")
    if args.command == "produce":
        lines = args.records.read_bytes().splitlines()
        pairs = [(key, value) for key, _, value in (line.partition(b"\t") for line in lines)]
        emit(run_on_uvloop(produce(settings, pairs, args.seconds, args.count, args.trace_headers)))
    elif args.command == "arrivals":
        with args.out.open("wb") as out:
            emit(run_on_uvloop(arrivals(settings, out)))
    elif args.command == "drain":
        emit(run_on_uvloop(drain(settings, args.expect, args.min_seconds)))
    else:
        with args.sink.open("wb") as sink:
            job = MinimalJob(sink)
            result = run_on_uvloop(drain(settings, args.expect, args.min_seconds, job))
        emit({**result, "lines": job.lines})


if __name__ == "__main__":
    main()
