"""RecordProcessor: handle one record (validate it, write its line) or set it aside with the reason.

A record that can never be handled (no value, too large, not JSON, not the schema) goes straight
to the dead-letter topic. Handling that fails for another reason (the sink cannot be written, a
bug) is retried with doubling pauses, then the record is set aside too. Either way `process`
returns only once the record is handled or the dead-letter topic has it, so the loop may commit
past it; if even that fails it raises, and nothing past the record is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from consumer_service.dead_letters import DeadLetters
from consumer_service.sink import Sink
from shared.logs import json_line
from shared.schema import Biometrics, parse_event

_log = logging.getLogger(__name__)
_EVENTS_LOGGER = "consumer_service.events"


class PoisonRecordError(Exception):
    """The record can never be handled, whoever tries."""


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
    ) -> None:
        self._sink = sink
        self._dead_letters = dead_letters
        self._max_record_bytes = max_record_bytes
        self._retries = retries
        self._backoff_s = retry_backoff_s
        self.counts = ProcessorCounts()

    async def process(self, record: ConsumerRecord[Any, Any]) -> None:
        """Handle the record, or set it aside; raise only if neither could be done."""
        try:
            event = self._decode(record)
        except PoisonRecordError as error:
            await self._set_aside(record, str(error))
            return
        line = _event_line(record, event)
        for attempt in range(self._retries + 1):
            try:
                self._sink.write(line)
            except Exception as error:
                failure = error
                if attempt < self._retries:
                    self.counts.retries += 1
                    pause = self._backoff_s * 2**attempt
                    _log.warning(
                        "handling failed; retrying",
                        extra={**_coordinates(record), "error": repr(error), "retry_in_s": pause},
                    )
                    await asyncio.sleep(pause)
            else:
                self.counts.handled += 1
                return
        await self._set_aside(record, f"handling failed {self._retries + 1} times: {failure!r}")

    def _decode(self, record: ConsumerRecord[Any, Any]) -> Biometrics:
        if record.value is None:
            raise PoisonRecordError("record has no value")
        if len(record.value) > self._max_record_bytes:
            raise PoisonRecordError(
                f"record is {len(record.value)} bytes, over consumer.max_record_bytes"
            )
        try:
            return parse_event(record.value)
        except ValidationError as error:
            raise PoisonRecordError(_describe(error)) from None

    async def _set_aside(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        await self._dead_letters.set_aside(record, reason)
        self.counts.dead_lettered += 1
        _log.error("record set aside", extra={**_coordinates(record), "error": reason})


def _coordinates(record: ConsumerRecord[Any, Any]) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key is not None else None,
    }


def _event_line(record: ConsumerRecord[Any, Any], event: Biometrics) -> bytes:
    return json_line(
        time.time(),
        "info",
        _EVENTS_LOGGER,
        "event consumed",
        **_coordinates(record),
        event=event.model_dump(),
    )


def _describe(error: ValidationError) -> str:
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    return "; ".join(
        f"{'.'.join(str(p) for p in problem['loc']) or 'value'}: {problem['msg']}"
        for problem in problems
    )
