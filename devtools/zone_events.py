"""Print the zone processor's HeartRateZoneReached events on stdout, one JSON line each, as a
read_committed reader sees them. The zone processor writes its events to a topic, not to its log,
so `./dev run` runs this reader beside the three services to show them.

`python -m devtools.zone_events [--since-ms MS]` waits for zones.topic to exist, then reads every
partition from the first event written at or after MS (default: now), so it neither replays the
topic's history nor misses an event written after MS. It joins no group and commits nothing.
SIGTERM or SIGINT stops it with exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from typing import BinaryIO

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError

from shared.kafka.options import client_options
from shared.kafka.registry import split_frame
from shared.runtime.settings import Settings, SettingsError, load_settings

ZONE_EVENT = "zone event"  # the message of each printed line

_TOPIC_POLL_S = 0.5


async def print_zone_events(
    settings: Settings, since_ms: int, stop: asyncio.Event, out: BinaryIO
) -> None:
    """Write a line to `out` for each committed zone event written at or after since_ms, until
    `stop` is set."""
    consumer = await _started_consumer(settings, stop)
    if consumer is None:
        return
    try:
        partitions = await _partitions_once_created(consumer, settings.zones.topic, stop)
        if not partitions:
            return
        await _seek_to_first_at_or_after(consumer, partitions, since_ms)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                out.write(b"".join(map(zone_event_line, records)))
            out.flush()
    finally:
        await consumer.stop()


def zone_event_line(record: ConsumerRecord[bytes, bytes]) -> bytes:
    """One zone event as a JSON line: where it is, its key, and the event (unframed)."""
    _, payload = split_frame(record.value or b"")
    line = {
        "message": ZONE_EVENT,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": (record.key or b"").decode(errors="replace"),
        "event": orjson.loads(payload),
    }
    return orjson.dumps(line) + b"\n"


async def _started_consumer(settings: Settings, stop: asyncio.Event) -> AIOKafkaConsumer | None:
    """A started read_committed consumer, retried as the services retry while Kafka cannot be
    reached; None if stopped first."""
    while not stop.is_set():
        consumer: AIOKafkaConsumer = AIOKafkaConsumer(
            **client_options(settings.kafka),
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            await consumer.start()
        except KafkaConnectionError:
            await consumer.stop()
            await _pause(stop, settings.kafka.connect_retry_s)
        else:
            return consumer
    return None


async def _partitions_once_created(
    consumer: AIOKafkaConsumer, topic: str, stop: asyncio.Event
) -> list[TopicPartition]:
    """Every partition of the topic, assigned to the consumer once the zone processor has created
    the topic; [] if stopped first."""
    while not stop.is_set() and topic not in await consumer.topics():  # a metadata request
        await _pause(stop, _TOPIC_POLL_S)
    if stop.is_set():
        return []
    consumer.subscribe([topic])  # without a group: every partition, as the metadata shows them
    while not stop.is_set() and not consumer.assignment():
        await _pause(stop, _TOPIC_POLL_S / 10)
    return sorted(consumer.assignment())


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _seek_to_first_at_or_after(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since_ms: int
) -> None:
    # The end offsets are asked first: an event written between the two requests has a
    # timestamp at or after since_ms, so the second one finds it.
    ends = await consumer.end_offsets(partitions)
    found = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
    for partition in partitions:
        at = found[partition]
        consumer.seek(partition, at.offset if at is not None else ends[partition])


def _quiet_about_new_leaders(record: logging.LogRecord) -> bool:
    # A new topic's partitions get their leaders a moment after it appears; aiokafka logs an
    # error for each offset lookup it then retries.
    return "NotLeaderForPartitionError" not in record.getMessage()


async def _run(settings: Settings, since_ms: int) -> None:
    logging.getLogger("aiokafka.consumer.fetcher").addFilter(_quiet_about_new_leaders)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await print_zone_events(settings, since_ms, stop, sys.stdout.buffer)


def main() -> int:
    """Read the settings, then print zone events until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m devtools.zone_events", description=__doc__)
    parser.add_argument(
        "--since-ms",
        type=int,
        default=None,
        help="print events written at or after this Unix time in milliseconds (default: now)",
    )
    arguments = parser.parse_args()
    since_ms = arguments.since_ms if arguments.since_ms is not None else int(time.time() * 1000)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"zone events: {error}", file=sys.stderr)
        return 2
    asyncio.run(_run(settings, since_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
