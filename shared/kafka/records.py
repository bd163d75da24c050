"""What every consumer of the events topic does with a record: decode it into a Biometrics event
(plain JSON, or framed in the Schema Registry's wire format with an id the registry knows; fields
this version does not know are ignored, see shared.contracts.schema.parse_record), or, when it never
can be, set it aside as a dead letter by the one rule below.

A dead letter keeps the record's key, value and headers (its trace context among them: see
shared.runtime.tracing), with headers added saying why (``dlq.error``) and where it came from
(``dlq.original.topic``, ``dlq.original.partition``, ``dlq.original.offset``). A value over
MAX_DEAD_LETTER_VALUE_BYTES is left out, with ``dlq.value-omitted``, so that the dead letter itself
can always be produced (also inside a transaction, where a refused send aborts it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from aiokafka import ConsumerRecord, TopicPartition

from shared.contracts.schema import Biometrics, InvalidEvent, parse_record
from shared.kafka.headers import (
    DLQ_ERROR,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_VALUE_OMITTED,
)
from shared.kafka.registry import (
    RegistryUnavailableError,
    SchemaRegistry,
    UnknownSchemaError,
    framed_schema_id,
    split_frame,
)

__all__ = [
    "MAX_DEAD_LETTER_VALUE_BYTES",
    "PoisonRecordError",
    "Polled",
    "RecordSource",
    "SchemaIds",
    "dead_letter",
    "decode_record",
    "schema_ids",
]

_log = logging.getLogger(__name__)

# What one poll (getmany) returns: each partition's records, in offset order.
Polled = Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]

# aiokafka refuses to send a record over its max_request_size (1 MiB by default); leave room for
# the key, the headers and the record batch around the value.
MAX_DEAD_LETTER_VALUE_BYTES = 900 * 1024

VALUE_OMITTED_HEADER = (DLQ_VALUE_OMITTED, b"too large for the dead-letter topic")


class RecordSource(Protocol):
    """The part of AIOKafkaConsumer a Kafka loop polls."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Polled: ...


class PoisonRecordError(Exception):
    """The record can never be handled, whoever tries: no value, too large, not the schema."""


# A valid record's event, and its JSON as it came (without the wire-format header): a plain
# tuple, as one is made per record.
Decoded = tuple[Biometrics, bytes]


class SchemaIds:
    """The schema ids of framed values, each looked up in the registry once (none without a
    registry: the payload is validated against the event's own schema either way)."""

    def __init__(self, registry: SchemaRegistry | None, retry_s: float = 1.0) -> None:
        self._registry = registry
        self._retry_s = retry_s
        self._known: set[int] = set()
        self._unknown: set[int] = set()

    def is_unknown(self, schema_id: int) -> bool:
        """Whether the registry said it has no schema with this id."""
        return schema_id in self._unknown

    async def check(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Look up the ids not seen before, retrying every `retry_s` while the registry cannot
        answer: nothing of these records may be decided (nor committed) without it."""
        if self._registry is None:
            return
        ids = {framed_schema_id(r.value) for r in records if r.value is not None}
        for schema_id in ids - {None} - self._known - self._unknown:
            assert schema_id is not None
            await self._look_up(self._registry, schema_id)

    async def _look_up(self, registry: SchemaRegistry, schema_id: int) -> None:
        while True:
            try:
                await registry.schema(schema_id)
            except UnknownSchemaError:
                self._unknown.add(schema_id)
            except RegistryUnavailableError as error:
                _log.warning(
                    "the schema registry is not reachable; retrying",
                    extra={"reason": str(error), "retry_in_s": self._retry_s},
                )
                await asyncio.sleep(self._retry_s)
                continue
            else:
                self._known.add(schema_id)
            return


def decode_record(
    record: ConsumerRecord[Any, Any], max_record_bytes: int, schema_ids: SchemaIds | None = None
) -> Decoded:
    """The record's event and JSON, from plain JSON or the registry's wire format (an id that
    `schema_ids` found unknown is poison); PoisonRecordError with the reason otherwise."""
    value = record.value
    if value is None:
        raise PoisonRecordError("record has no value")
    if len(value) > max_record_bytes:
        raise PoisonRecordError(f"record is {len(value)} bytes, over max_record_bytes")
    schema_id, payload = split_frame(value)
    if schema_id is not None and schema_ids is not None and schema_ids.is_unknown(schema_id):
        raise PoisonRecordError(f"schema id {schema_id} is not in the schema registry")
    try:
        return parse_record(payload), payload
    except InvalidEvent as error:
        raise PoisonRecordError(error.describe(root="value")) from None


class DeadLetter(NamedTuple):
    """The record to produce to the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(record: ConsumerRecord[Any, Any], reason: str) -> DeadLetter:
    """What the dead letter of `record` carries: its key, its value unless that is too large,
    its headers, and the headers saying why and where from."""
    headers = [
        *record.headers,
        (DLQ_ERROR, reason.encode()),
        (DLQ_ORIGINAL_TOPIC, record.topic.encode()),
        (DLQ_ORIGINAL_PARTITION, str(record.partition).encode()),
        (DLQ_ORIGINAL_OFFSET, str(record.offset).encode()),
    ]
    value = record.value
    if value is not None and len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        headers.append(VALUE_OMITTED_HEADER)
        value = None
    # aiokafka sends no record without a key or a value.
    key = record.key if value is not None else record.key or b""
    return DeadLetter(key, value, headers)


def schema_ids(registry: SchemaRegistry | None, retry_backoff_ms: int) -> SchemaIds:
    """The ids of framed records, looked up in the registry (if on), retried this often while it
    is unreachable (at least every 0.1 s)."""
    return SchemaIds(registry, max(retry_backoff_ms / 1000, 0.1))
