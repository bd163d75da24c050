"""The Biometrics event: one pydantic definition for validation, the wire encoding and the docs.

Field names are the camelCase ones of the course's sample body. Plausibility bounds:

=================  ===========================================================
field              accepted
=================  ===========================================================
deviceId           a UUID (any version), written as a string
heartRates         0 to MAX_READINGS readings of {dateTime, value}
heartRates.value   HEART_RATE_MIN to HEART_RATE_MAX beats per minute, integer
stepCounts         0 to MAX_READINGS readings of {dateTime, value}
stepCounts.value   0 to STEP_COUNT_MAX steps, integer
maxHeartRate       MAX_HEART_RATE_MIN to MAX_HEART_RATE_MAX beats per minute
dateTime           ISO-8601 with a UTC offset, e.g. 2022-02-15T10:41:16.123+00:00
=================  ===========================================================

Unknown fields are rejected, so a misspelt field is an error rather than silently lost data.
On the wire the event is JSON (orjson) keyed by ``deviceId``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

HEART_RATE_MIN = 25
HEART_RATE_MAX = 250
MAX_HEART_RATE_MIN = 100
MAX_HEART_RATE_MAX = 250
STEP_COUNT_MAX = 100_000
MAX_READINGS = 1_000


def _whole_float_as_int(value: Any) -> Any:
    # JSON Schema counts 72.0 as an integer, so the validation does too; 72.5 and "72" still fail.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_WHOLE = BeforeValidator(_whole_float_as_int)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class HeartRate(_Strict):
    """One heart-rate reading."""

    dateTime: AwareDatetime
    value: Annotated[int, Field(ge=HEART_RATE_MIN, le=HEART_RATE_MAX), _WHOLE]


class StepCount(_Strict):
    """Steps counted since the previous reading."""

    dateTime: AwareDatetime
    value: Annotated[int, Field(ge=0, le=STEP_COUNT_MAX), _WHOLE]


class Biometrics(_Strict):
    """The Biometrics event a fitness tracker posts and the topic carries."""

    deviceId: UUID
    heartRates: Annotated[list[HeartRate], Field(max_length=MAX_READINGS)]
    stepCounts: Annotated[list[StepCount], Field(max_length=MAX_READINGS)]
    maxHeartRate: Annotated[int, Field(ge=MAX_HEART_RATE_MIN, le=MAX_HEART_RATE_MAX), _WHOLE]


def parse_event(data: bytes | str) -> Biometrics:
    """Validate one event from JSON; raise pydantic.ValidationError."""
    return Biometrics.model_validate_json(data)


def parse_events(data: bytes | str, max_events: int) -> list[Biometrics]:
    """Validate a JSON array of 1 to max_events events, all or nothing."""
    return _batch_adapter(max_events).validate_json(data)


def encode_key(event: Biometrics) -> bytes:
    """The record key: the device id, so each device's events share a partition."""
    return str(event.deviceId).encode()


def encode_value(event: Biometrics) -> bytes:
    """The record value: the event as compact JSON."""
    return orjson.dumps(event.model_dump())


def json_schema() -> dict[str, Any]:
    """The event's JSON Schema, for documentation."""
    return Biometrics.model_json_schema()


_batch_adapters: dict[int, TypeAdapter[list[Biometrics]]] = {}


def _batch_adapter(max_events: int) -> TypeAdapter[list[Biometrics]]:
    adapter = _batch_adapters.get(max_events)
    if adapter is None:
        batch = Annotated[list[Biometrics], Field(min_length=1, max_length=max_events)]
        adapter = _batch_adapters[max_events] = TypeAdapter(batch)
    return adapter
