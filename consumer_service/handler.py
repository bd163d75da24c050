"""log_record: handle a record by validating it and writing it as one JSON log line."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from shared.schema import parse_event

_events = logging.getLogger("consumer_service.events")


def log_record(record: ConsumerRecord[Any, Any]) -> None:
    """Write one line for the record: the event's content, or why it could not be decoded."""
    coordinates = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key is not None else None,
    }
    try:
        if record.value is None:
            raise ValueError("record has no value")
        event = parse_event(record.value)
    except (ValidationError, ValueError) as error:
        # One bad record must not stop the partition: say why, with its coordinates, and go on.
        _events.error("undecodable record", extra={**coordinates, "error": _reason(error)})
        return
    _events.info("event consumed", extra={**coordinates, "event": event.model_dump()})


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        problems = error.errors(include_url=False, include_input=False, include_context=False)
        return "; ".join(
            f"{'.'.join(str(p) for p in problem['loc']) or 'value'}: {problem['msg']}"
            for problem in problems
        )
    return str(error)
