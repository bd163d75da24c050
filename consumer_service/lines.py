"""PendingLines: the JSON lines of validated records, kept until they are written in one go.

Each line has the fields of every JSON log line (shared.runtime.logs), then ``topic``,
``partition``, ``offset``, ``key``, ``request_id``, ``idempotency_key`` and ``traceparent`` (from
the record's headers, see shared.runtime.tracing and shared.kafka.headers; null when it has none),
``age_ms`` and ``event``. Up to the partition the fields
are the same for all of a partition's records in one call, so that part is made once, with one
timestamp; each record adds only its own fields. The event is the record's value as it is, just
validated: no dict and no second encoding (re-encoded only if it spans lines), so fields a newer
writer added are kept in the line although this version does not know them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import ConsumerRecord, TopicPartition

from shared.contracts.schema import encode_value
from shared.kafka.headers import IDEMPOTENCY_KEY, REQUEST_ID, TRACEPARENT
from shared.kafka.records import PoisonRecordError, SchemaIds, decode_record
from shared.runtime.logs import json_line_head

EVENTS_LOGGER = "consumer_service.events"
EVENT_CONSUMED = "event consumed"

_TAIL = (
    b',"offset":%d,"key":%b,"request_id":%b,"idempotency_key":%b,"traceparent":%b,'
    b'"age_ms":%.1f,"event":%b}\n'
)
_LF, _CR = ord("\n"), ord("\r")


class PendingLines:
    """Lines not yet written, their records, and each partition's offset to commit once they are."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.records: list[ConsumerRecord[Any, Any]] = []
        self.offsets: dict[TopicPartition, int] = {}

    def add(
        self,
        records: Sequence[ConsumerRecord[Any, Any]],
        max_record_bytes: int,
        schema_ids: SchemaIds | None = None,
    ) -> list[tuple[ConsumerRecord[Any, Any], str]]:
        """Keep a line for each valid record of one partition; return the others, with why."""
        created = time.time()
        line = _line_template(created, records[0].topic, records[0].partition)
        now_ms = created * 1000
        lines, kept = self.lines, self.records
        poison: list[tuple[ConsumerRecord[Any, Any], str]] = []
        for record in records:
            try:
                event, value = decode_record(record, max_record_bytes, schema_ids)
            except PoisonRecordError as error:
                poison.append((record, str(error)))
                continue
            if _LF in value or _CR in value:
                value = encode_value(event)
            key = (
                b"null" if record.key is None else orjson.dumps(record.key.decode(errors="replace"))
            )
            request_id, idempotency_key, traceparent = _header_fields(record.headers)
            lines.append(
                line
                % (
                    record.offset,
                    key,
                    request_id,
                    idempotency_key,
                    traceparent,
                    now_ms - record.timestamp,
                    value,
                )
            )
            kept.append(record)
        return poison


def _header_fields(headers: Sequence[tuple[str, bytes]]) -> tuple[bytes, bytes, bytes]:
    """The record's request id, idempotency key and traceparent as JSON values (a header may hold
    any bytes)."""
    request_id = idempotency_key = traceparent = b"null"
    for name, value in headers:
        if name == REQUEST_ID:
            request_id = orjson.dumps(value.decode(errors="replace"))
        elif name == TRACEPARENT:
            traceparent = orjson.dumps(value.decode(errors="replace"))
        elif name == IDEMPOTENCY_KEY:
            idempotency_key = orjson.dumps(value.decode(errors="replace"))
    return request_id, idempotency_key, traceparent


def _line_template(created: float, topic: str, partition: int) -> bytes:
    """A line of the partition up to its record's fields, which `%` then fills in."""
    head = json_line_head(
        created, "info", EVENTS_LOGGER, EVENT_CONSUMED, topic=topic, partition=partition
    )
    return head.replace(b"%", b"%%") + _TAIL
