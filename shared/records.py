"""What every consumer of the events topic does with a record: decode it into a Biometrics event,
or, when it never can be, set it aside as a dead letter by the one rule below.

A dead letter keeps the record's key and value, with headers saying why (``dlq.error``) and where
it came from (``dlq.original.topic``, ``dlq.original.partition``, ``dlq.original.offset``). A value
over MAX_DEAD_LETTER_VALUE_BYTES is left out, with ``dlq.value-omitted``, so that the dead letter
itself can always be produced (also inside a transaction, where a refused send aborts it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from aiokafka import ConsumerRecord, TopicPartition

from shared.schema import Biometrics, InvalidEvent, parse_event

# What one getmany() returns.
Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]

# aiokafka refuses to send a record over its max_request_size (1 MiB by default); leave room for
# the key, the headers and the record batch around the value.
MAX_DEAD_LETTER_VALUE_BYTES = 900 * 1024
VALUE_OMITTED_HEADER = ("dlq.value-omitted", b"too large for the dead-letter topic")


class PoisonRecordError(Exception):
    """The record can never be handled, whoever tries: no value, too large, not the schema."""


def decode_record(record: ConsumerRecord[Any, Any], max_record_bytes: int) -> Biometrics:
    """Validate the record's value; raise PoisonRecordError with the reason otherwise."""
    value = record.value
    if value is None:
        raise PoisonRecordError("record has no value")
    if len(value) > max_record_bytes:
        raise PoisonRecordError(f"record is {len(value)} bytes, over consumer.max_record_bytes")
    try:
        return parse_event(value)
    except InvalidEvent as error:
        raise PoisonRecordError(error.describe(root="value")) from None


class DeadLetter(NamedTuple):
    """The record to produce to the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(record: ConsumerRecord[Any, Any], reason: str) -> DeadLetter:
    """What the dead letter of `record` carries: its key, its value unless that is too large,
    and the headers saying why and where from."""
    headers = [
        ("dlq.error", reason.encode()),
        ("dlq.original.topic", record.topic.encode()),
        ("dlq.original.partition", str(record.partition).encode()),
        ("dlq.original.offset", str(record.offset).encode()),
    ]
    value = record.value
    if value is not None and len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        headers.append(VALUE_OMITTED_HEADER)
        value = None
    # aiokafka sends no record without a key or a value.
    key = record.key if value is not None else record.key or b""
    return DeadLetter(key, value, headers)
