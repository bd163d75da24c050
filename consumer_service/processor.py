"""RecordProcessor: handle records (validate, write a line each) or set them aside with the reason.

`process` takes one partition's records at a time: it validates them and keeps their lines in a
tight loop, then sets the poison ones aside (no value, too large, not JSON, not the schema) in the
dead-letter topic. `flush` writes the kept lines in one go, on a worker thread so a slow stdout
never blocks the event loop; a write that fails (the sink, not the records) is retried with
doubling pauses, and if it keeps failing, the records of that write are set aside too.

With tracing on, each record has a span from before its validation until its line is kept or
its dead letter acknowledged (shared.runtime.tracing.RecordSpans).

`flush` returns each partition's next offset for the records it has made safe to commit: their
lines are written or they are in the dead-letter topic. A partition's offset is noted only after
its dead letters are acknowledged, and flushes run one at a time, so a flush called by the
rebalance listener while the loop's is under way returns only once that one is done. If even the
dead-letter topic cannot be written, the error is raised and the processor refuses all further
work (ProcessorStoppedError), so nothing past the records it failed on is ever committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from consumer_service.dead_letters import DeadLetters
from consumer_service.lines import PendingLines
from consumer_service.metrics import ConsumerMetrics
from consumer_service.sink import Sink
from shared.kafka.dedupe import Duplicates
from shared.kafka.headers import REQUEST_ID, TRACEPARENT, header_text
from shared.kafka.records import SchemaIds
from shared.runtime.tracing import RecordSpans, end_span

_log = logging.getLogger(__name__)


class ProcessorStoppedError(RuntimeError):
    """A record could not be set aside earlier; nothing after it is handled any more."""


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
        schema_ids: SchemaIds | None = None,
        spans: RecordSpans | None = None,
        duplicates: Duplicates | None = None,
    ) -> None:
        self._sink = sink
        self._duplicates = duplicates
        self._spans = spans
        self._dead_letters = dead_letters
        self._max_record_bytes = max_record_bytes
        self._retries = retries
        self._backoff_s = retry_backoff_s
        self._metrics = metrics or ConsumerMetrics()
        self._schema_ids = schema_ids or SchemaIds(None)
        self._pending = PendingLines()
        self._flushing = asyncio.Lock()
        self._failure: BaseException | None = None
        self.counts = ProcessorCounts()

    async def process(
        self, partition: TopicPartition, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> None:
        """Keep the lines of a partition's valid records for the next flush; set the rest aside.
        Copies of events already handled (shared.kafka.dedupe) are dropped."""
        self._raise_if_stopped()
        if not records:
            return
        last = records[-1].offset
        if (duplicates := self._duplicates) is not None:
            await duplicates.ensure(partition, records[0].offset)
            originals = duplicates.originals(partition, records)
            self._metrics.duplicates.inc(len(records) - len(originals))
            records = originals
        if not records:
            self._pending.offsets[partition] = last + 1
            return
        await self._schema_ids.check(records)
        spans = None if self._spans is None else [self._spans.start(r) for r in records]
        poison = self._pending.add(records, self._max_record_bytes, self._schema_ids)
        for record, reason in poison:
            await self._set_aside(record, reason)
        if spans is not None:
            reasons = {id(record): reason for record, reason in poison}
            for span, record in zip(spans, records, strict=True):
                end_span(span, reasons.get(id(record)))
        # Noted only now: a flush during the dead letters above must not commit past them.
        self._pending.offsets[partition] = last + 1

    async def flush(self) -> dict[TopicPartition, int]:
        """Write every kept line; return each partition's next offset of what is now handled."""
        async with self._flushing:
            self._raise_if_stopped()
            pending, self._pending = self._pending, PendingLines()
            if pending.lines:
                await self._write(pending)
            return pending.offsets

    async def _write(self, pending: PendingLines) -> None:
        lines = pending.lines
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
        for record in pending.records:
            await self._set_aside(record, reason)

    async def _set_aside(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        try:
            await self._dead_letters.set_aside(record, reason)
        except BaseException as error:
            self._failure = error
            raise
        self.counts.dead_lettered += 1
        self._metrics.dead_lettered.inc()
        _log.error("record set aside", extra={**_coordinates(record), "error": reason})

    def _raise_if_stopped(self) -> None:
        if self._failure is not None:
            raise ProcessorStoppedError(
                f"setting a record aside failed earlier: {self._failure!r}"
            ) from self._failure


def _coordinates(record: ConsumerRecord[Any, Any]) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key is not None else None,
        "request_id": header_text(record.headers, REQUEST_ID),
        "traceparent": header_text(record.headers, TRACEPARENT),
    }
