"""Sample events and small fakes shared by the unit and integration tests."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from uuid import uuid4

from aiokafka import ConsumerRecord, TopicPartition

from producer_service import Delivery
from shared.logs import LogFormat, LogWriter, configure_logging
from shared.schema import Biometrics
from shared.settings import Settings
from shared.tracing import RecordHeaders

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "BiometricsImported"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def record(
    partition: int,
    offset: int,
    value: bytes | None = b"v",
    key: bytes | None = b"k",
    headers: Sequence[tuple[str, bytes]] = (),
) -> ConsumerRecord[bytes, bytes]:
    """A consumed record of TOPIC, as aiokafka hands it over."""
    size = len(value or b"")
    return ConsumerRecord(
        TOPIC, partition, offset, 0, 0, key, value, None, len(key or b""), size, list(headers)
    )


def clean_env(**variables: str) -> dict[str, str]:
    """This process's environment without its BIOMETRICS_* variables, plus `variables`: for a
    child process that must see the project's settings files, not what a developer exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOMETRICS_")}
    return env | variables


def event_body(device_id: str | None = None, readings: int = 3, **overrides: Any) -> dict[str, Any]:
    """A valid Biometrics body as a tracker would post it; overrides replace top-level fields."""
    start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    body: dict[str, Any] = {
        "deviceId": device_id or str(uuid4()),
        "heartRates": [
            {"dateTime": (start + timedelta(seconds=i)).isoformat(), "value": 70 + i}
            for i in range(readings)
        ],
        "stepCounts": [
            {"dateTime": (start + timedelta(seconds=i)).isoformat(), "value": 10 * i}
            for i in range(readings)
        ],
        "maxHeartRate": 190,
    }
    body.update(overrides)
    return body


class RecordingDeadLetters:
    """Keeps what would go to the dead-letter topic."""

    def __init__(self) -> None:
        self.letters: list[tuple[Any, str]] = []

    async def set_aside(self, record: Any, reason: str) -> None:
        self.letters.append((record, reason))


class FlakySink:
    """Fails the first `failures` writes, then keeps the lines."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.lines: list[bytes] = []
        self.written = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def write_lines(self, lines: Sequence[bytes]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("stdout closed")
        self.lines.extend(lines)
        self._loop.call_soon_threadsafe(self.written.set)  # called on a worker thread


class RecordingPublisher:
    """A publisher that records what it was asked to publish, and can be told to fail."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.kafka.topic
        self.published: list[Biometrics] = []
        self.headers: list[list[tuple[str, bytes]]] = []  # those of each call
        self.failure: Exception | None = None
        self.is_ready = True
        self.entered = self.exited = False

    async def __aenter__(self) -> RecordingPublisher:
        self.entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exited = True

    async def ready(self) -> bool:
        return self.is_ready

    async def publish(
        self, events: Sequence[Biometrics], headers: RecordHeaders = ()
    ) -> list[Delivery]:
        if self.failure is not None:
            raise self.failure
        first = len(self.published)
        self.published.extend(events)
        self.headers.append(list(headers))
        return [Delivery(self.topic, 0, first + i) for i in range(len(events))]


@contextmanager
def logging_to(stream: TextIO, log_format: LogFormat = "json") -> Iterator[LogWriter]:
    """configure_logging for one test; the root logger's handlers and level are restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    writer = configure_logging("INFO", log_format, stream)
    try:
        yield writer
    finally:
        writer.stop()
        root.handlers[:], root.level = handlers, level
