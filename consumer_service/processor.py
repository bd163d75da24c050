"""RecordProcessor: handle records (validate, write a line each) or set them aside with the reason.

`process` validates a record and keeps its line; `flush` writes the kept lines in one go, on a
worker thread so a slow stdout never blocks the event loop. A record that can never be handled
(no value, too large, not JSON, not the schema) goes straight to the dead-letter topic. A write
that fails (the sink, not the record) is retried with doubling pauses; if it keeps failing, the
records of that write are set aside too. After `flush` returns, every record processed so far is
handled or in the dead-letter topic, so the loop may commit past them; if even the dead-letter
topic cannot be written, it raises and nothing past those records is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from consumer_service.dead_letters import DeadLetters
from consumer_service.decoding import PoisonRecordError, decode_record
from consumer_service.metrics import ConsumerMetrics
from consumer_service.sink import Sink
from shared.logs import json_line
from shared.schema import Biometrics

_log = logging.getLogger(__name__)
_EVENTS_LOGGER = "consumer_service.events"


@dataclass
class ProcessorCounts:
    """What the processor has done since it started."""

    handled: int = 0
    dead_lettered: int = 0
    retries: int = 0


class RecordProcessor:
    """Turn each record into one JSON line on the sink, or into a dead letter."""

    def __init__(
        self,
        sink: Sink,
        dead_letters: DeadLetters,
        *,
        max_record_bytes: int,
        retries: int,
        retry_backoff_s: float,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        self._sink = sink
        self._dead_letters = dead_letters
        self._max_record_bytes = max_record_bytes
        self._retries = retries
        self._backoff_s = retry_backoff_s
        self._metrics = metrics or ConsumerMetrics()
        self._lines: list[bytes] = []
        self._records: list[ConsumerRecord[Any, Any]] = []
        self.counts = ProcessorCounts()

    async def process(self, record: ConsumerRecord[Any, Any]) -> None:
        """Validate the record and keep its line for the next flush, or set it aside now."""
        try:
            event = decode_record(record, self._max_record_bytes)
        except PoisonRecordError as error:
            await self._set_aside(record, str(error))
            return
        self._lines.append(_event_line(record, event))
        self._records.append(record)

    async def flush(self) -> None:
        """Write every kept line; set their records aside if the writes keep failing."""
        lines, records = self._lines, self._records
        self._lines, self._records = [], []
        if not lines:
            return
        for attempt in range(self._retries + 1):
            try:
                await asyncio.to_thread(self._sink.write_lines, lines)
            except Exception as error:
                failure = error
                if attempt < self._retries:
                    self.counts.retries += 1
                    pause = self._backoff_s * 2**attempt
                    _log.warning(
                        "writing lines failed; retrying",
                        extra={"lines": len(lines), "error": repr(error), "retry_in_s": pause},
                    )
                    await asyncio.sleep(pause)
            else:
                self.counts.handled += len(lines)
                self._metrics.handled.inc(len(lines))
                return
        reason = f"handling failed {self._retries + 1} times: {failure!r}"
        for record in records:
            await self._set_aside(record, reason)

    async def _set_aside(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        await self._dead_letters.set_aside(record, reason)
        self.counts.dead_lettered += 1
        self._metrics.dead_lettered.inc()
        _log.error("record set aside", extra={**_coordinates(record), "error": reason})


def _coordinates(record: ConsumerRecord[Any, Any]) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key is not None else None,
    }


def _event_line(record: ConsumerRecord[Any, Any], event: Biometrics) -> bytes:
    now = time.time()
    value: bytes = record.value
    # The value has just been validated as the schema's JSON; unless it spans lines, it goes into
    # the line as it is, which saves dumping the event and encoding it again.
    content: Any = (
        event.model_dump() if b"\n" in value or b"\r" in value else orjson.Fragment(value)
    )
    return json_line(
        now,
        "info",
        _EVENTS_LOGGER,
        "event consumed",
        **_coordinates(record),
        age_ms=round(now * 1000 - record.timestamp, 1),
        event=content,
    )
