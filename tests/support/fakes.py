"""Small real classes standing in for a service's collaborators: a publisher, a consumer's sink,
the dead-letter topic."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from consumer_service import EVENT_CONSUMED
from producer_service import Delivery
from producer_service.publisher import EventKeys, Events
from shared.contracts.schema import Biometrics
from shared.kafka.headers import RecordHeaders
from shared.runtime.settings import Settings


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


class LineCollector:
    """A consumer sink that keeps each line it is given and lets a test await them."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def write_lines(self, lines: Sequence[bytes]) -> None:
        # Called on a worker thread: hand the lines to the test's event loop.
        self._loop.call_soon_threadsafe(self._add, lines)

    def _add(self, lines: Sequence[bytes]) -> None:
        self.lines.extend(orjson.loads(line) for line in lines)
        self._changed.set()

    def events(self) -> list[dict[str, Any]]:
        """The consumed-event lines so far."""
        return [line for line in self.lines if line["message"] == EVENT_CONSUMED]

    async def wait_for_events(self, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Wait until at least `count` event lines have been written."""
        async with asyncio.timeout(timeout_s):
            while len(self.events()) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events()


class RecordingPublisher:
    """A publisher that records what it was asked to publish, and can be told to fail."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.kafka.topic
        self.published: list[Biometrics] = []
        self.headers: list[list[tuple[str, bytes]]] = []  # those of each call
        self.keys: list[list[bytes] | None] = []  # the idempotency keys of each call
        self.failure: Exception | None = None  # what a call fails with, as set when it began
        self.gate: asyncio.Event | None = None  # when set, publish waits for it
        self.is_ready = True
        self.entered = self.exited = False

    async def __aenter__(self) -> RecordingPublisher:
        self.entered = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.exited = True

    def ready(self) -> bool:
        return self.is_ready

    async def publish(
        self, events: Events, headers: RecordHeaders = (), keys: EventKeys = None
    ) -> list[Delivery]:
        failure = self.failure
        if self.gate is not None:
            await self.gate.wait()
        if failure is not None:
            raise failure
        first = len(self.published)
        self.published.extend(events)
        self.headers.append(list(headers))
        self.keys.append(None if keys is None else list(keys))
        return [Delivery(self.topic, 0, first + i) for i in range(len(events))]
