"""The child process of tests/unit/test_stdout_contract.py: every writer of stdout at once.

`python -m tests.support.stdout_writers` configures the services' JSON logging, then, all at
once, THREADS threads and TASKS asyncio tasks log LOG_LINES lines each (every LONG_EVERY-th with
a field longer than the 8 KiB buffer) while the consumer's RecordProcessor writes EVENTS event
lines through the real StreamSink, in batches of BATCH_SIZES lines (the largest over 64 KiB) on a
worker thread. A log line names its writer and its sequence number (`writer`, `seq`); an event
line has the key SINK and its sequence number as its offset.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from typing import Any

import orjson
from aiokafka import TopicPartition

from consumer_service import RecordProcessor, StreamSink
from shared.runtime.logs import configure_logging
from tests.support.fakes import RecordingDeadLetters
from tests.support.samples import TOPIC, event_body, record

THREADS = tuple(f"thread-{n}" for n in range(4))
TASKS = tuple(f"task-{n}" for n in range(4))
LOG_LINES = 2_000
LONG_EVERY = 50
LONG_FIELD = 20_000
EVENTS = 5_000
BATCH_SIZES = (1, 9, 60, 250)
SINK = "sink"
LOGGER = "tests.stdout_writers"
# A task hands the loop on after this many lines, so tasks and the sink take turns.
_TASK_TURN = 10


def event_batches() -> list[range]:
    """The event sequence numbers of each write of the sink, in order."""
    batches: list[range] = []
    sizes = itertools.cycle(BATCH_SIZES)
    while (start := batches[-1].stop if batches else 0) < EVENTS:
        batches.append(range(start, min(start + next(sizes), EVENTS)))
    return batches


def _fields(writer: str, seq: int) -> dict[str, Any]:
    fields: dict[str, Any] = {"writer": writer, "seq": seq}
    if seq % LONG_EVERY == 0:
        fields["padding"] = "x" * LONG_FIELD
    return fields


def _log_from_thread(writer: str, start: threading.Barrier) -> None:
    log = logging.getLogger(LOGGER)
    start.wait()
    for seq in range(LOG_LINES):
        log.info("line", extra=_fields(writer, seq))


async def _log_from_task(writer: str) -> None:
    log = logging.getLogger(LOGGER)
    for seq in range(LOG_LINES):
        log.info("line", extra=_fields(writer, seq))
        if seq % _TASK_TURN == 0:
            await asyncio.sleep(0)  # a turn of the loop, not a wait


async def _write_events() -> None:
    """The consumer's path: process a partition's records, flush their lines on a worker thread."""
    processor = RecordProcessor(
        StreamSink(), RecordingDeadLetters(), max_record_bytes=1 << 20, retries=0,
        retry_backoff_s=0,
    )  # fmt: skip
    partition = TopicPartition(TOPIC, 0)
    key = SINK.encode()
    for batch in event_batches():
        records = [record(0, seq, orjson.dumps(event_body()), key=key) for seq in batch]
        await processor.process(partition, records)
        await processor.flush()


async def _main(start: threading.Barrier) -> None:
    await asyncio.to_thread(start.wait)
    await asyncio.gather(_write_events(), *(_log_from_task(writer) for writer in TASKS))


def main() -> None:
    """Write every line, then stop the log writer so that all of them are out."""
    writer = configure_logging(level="INFO", log_format="json")
    start = threading.Barrier(len(THREADS) + 1)
    threads = [threading.Thread(target=_log_from_thread, args=(w, start)) for w in THREADS]
    for thread in threads:
        thread.start()
    asyncio.run(_main(start))
    for thread in threads:
        thread.join()
    writer.stop()


if __name__ == "__main__":
    main()
