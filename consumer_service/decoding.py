"""decode_record: a record's value as a validated Biometrics event, or why it never can be."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord

from shared.schema import Biometrics, InvalidEvent, parse_event


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
        reasons = (f"{p.path or 'value'}: {p.message}" for p in error.problems)
        raise PoisonRecordError("; ".join(reasons)) from None
