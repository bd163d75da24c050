"""The Biometrics event: one msgspec definition for validation, the wire encoding and the docs.

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
restingHeartRate   optional (version 2): HEART_RATE_MIN to RESTING_HEART_RATE_MAX beats per
                   minute; absent from the record when the device does not send it
dateTime           RFC 3339 with a UTC offset, e.g. 2022-02-15T10:41:16.123+00:00
=================  ===========================================================

Strict at the edge, tolerant inside: `parse_event` and `parse_events` (the HTTP routes) refuse
unknown fields, so a misspelt field from a device is an error rather than silently lost data;
`parse_record` (the services reading the topic) ignores the fields it does not know, at every
level, so that a writer one version ahead (a new optional field) does not send its records to an
older reader's dead-letter topic. Both refuse what breaks the contract: a missing required field,
a wrong type, a value out of bounds.
An integer may be written as a whole float (72.0), as JSON Schema allows; 72.5 and "72" are not
integers. On the wire the event is compact JSON keyed by ``deviceId``.

msgspec validates a well-formed event in C, in one pass. Its decoder stops at the first problem
and has no "whole float is an integer" rule, so a refused body takes a slower second look
(`_second_look`) that accepts whole floats and names every bad field, each by its path in one
format: ``heartRates[1].value``, ``[3].maxHeartRate``.
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = [
    "HEART_RATE_MAX",
    "MAX_READINGS",
    "AwareDatetime",
    "Biometrics",
    "HeartRate",
    "InvalidEvent",
    "StepCount",
    "encode_key",
    "encode_record",
    "encode_value",
    "json_schema",
    "location",
    "parse_event",
    "parse_events",
    "parse_record",
    "tolerant",
]

HEART_RATE_MIN = 25
HEART_RATE_MAX = 250
MAX_HEART_RATE_MIN = 100
MAX_HEART_RATE_MAX = 250
STEP_COUNT_MAX = 100_000
RESTING_HEART_RATE_MAX = 200
MAX_READINGS = 1_000

T = TypeVar("T")
S = TypeVar("S", bound=Struct)

AwareDatetime = Annotated[datetime, Meta(tz=True, description="RFC 3339 with a UTC offset")]


class HeartRate(Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """One heart-rate reading."""

    dateTime: AwareDatetime
    value: Annotated[int, Meta(ge=HEART_RATE_MIN, le=HEART_RATE_MAX)]


class StepCount(Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """Steps counted since the previous reading."""

    dateTime: AwareDatetime
    value: Annotated[int, Meta(ge=0, le=STEP_COUNT_MAX)]


class Biometrics(Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """The Biometrics event a fitness tracker posts and the topic carries."""

    deviceId: UUID
    heartRates: Annotated[list[HeartRate], Meta(max_length=MAX_READINGS)]
    stepCounts: Annotated[list[StepCount], Meta(max_length=MAX_READINGS)]
    maxHeartRate: Annotated[int, Meta(ge=MAX_HEART_RATE_MIN, le=MAX_HEART_RATE_MAX)]
    restingHeartRate: (
        Annotated[int, Meta(ge=HEART_RATE_MIN, le=RESTING_HEART_RATE_MAX)] | UnsetType
    ) = UNSET


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a document was refused: where (empty for the whole document) and what."""

    path: str
    message: str


class InvalidEvent(ValueError):
    """The document is not JSON (`malformed`), or breaks the schema; `problems` say where."""

    def __init__(self, problems: list[Problem], *, malformed: bool = False) -> None:
        self.problems = problems
        self.malformed = malformed
        super().__init__(self.describe())

    def describe(self, root: str = "$") -> str:
        """Every problem as `path: message`, joined by "; "; `root` names the whole document."""
        return "; ".join(f"{p.path or root}: {p.message}" for p in self.problems)


def location(parts: Iterable[str | int]) -> str:
    """A location in the one format every error uses: names joined by dots, list indexes in
    brackets (`heartRates[1].value`, `[3].maxHeartRate`, `http.api_keys[0]`)."""
    path = ""
    for part in parts:
        path = _index(path, part) if isinstance(part, int) else _join(path, part)
    return path


def tolerant(strict: type[S]) -> type[S]:
    """A subclass of the Struct `strict` that ignores the fields it does not know, in its nested
    Structs too; otherwise the same fields, types and bounds (made from them, never written
    twice)."""
    return _tolerant(strict)


@functools.cache
def _tolerant(strict: type[S]) -> type[S]:
    overrides = []
    for field in msgspec.structs.fields(strict):
        annotation = _tolerant_annotation(field.type)
        if annotation is not field.type:
            default = () if field.required else (field.default,)
            overrides.append((field.name, annotation, *default))
    config = strict.__struct_config__
    tolerant_type = msgspec.defstruct(
        f"{strict.__name__}Record",
        overrides,
        bases=(strict,),
        module=strict.__module__,
        forbid_unknown_fields=False,
        frozen=config.frozen,
        gc=config.gc,
    )
    return typing.cast(type[S], tolerant_type)


def _tolerant_annotation(annotation: Any) -> Any:
    """`annotation` with each Struct in it replaced by its tolerant subclass (the same object
    when it has none)."""
    if isinstance(annotation, type) and issubclass(annotation, Struct):
        return _tolerant(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        inner = _tolerant_annotation(args[0])
        return annotation if inner is args[0] else Annotated[(inner, *annotation.__metadata__)]
    mapped = tuple(_tolerant_annotation(arg) for arg in args)
    if mapped == args:
        return annotation
    if origin is list:
        (item,) = mapped
        return list[item]  # type: ignore[valid-type]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, mapped)
    raise TypeError(f"no tolerant form of {annotation!r}")


_event_decoder: msgspec.json.Decoder[Biometrics] = msgspec.json.Decoder(Biometrics)
_BiometricsRecord = tolerant(Biometrics)
_record_decoder: msgspec.json.Decoder[Biometrics] = msgspec.json.Decoder(_BiometricsRecord)
_encoder = msgspec.json.Encoder()


def parse_event(data: bytes | str) -> Biometrics:
    """Validate one event from JSON, refusing unknown fields (the HTTP edge); raise
    InvalidEvent."""
    return _decode(_event_decoder, Biometrics, data)


def parse_record(data: bytes | str) -> Biometrics:
    """Validate one event read from the topic, ignoring the fields this version does not know
    (a newer writer's); raise InvalidEvent for anything else that breaks the schema."""
    return _decode(_record_decoder, _BiometricsRecord, data)


def parse_events(data: bytes | str, max_events: int) -> list[Biometrics]:
    """Validate a JSON array of 1 to max_events events, all or nothing; raise InvalidEvent."""
    decoder, batch_type = _batch_decoder(max_events)
    return _decode(decoder, batch_type, data)


def encode_key(event: Biometrics) -> bytes:
    """The record key: the device id, so each device's events share a partition."""
    return str(event.deviceId).encode()


def encode_value(event: Biometrics) -> bytes:
    """The record value: the event as compact JSON."""
    return _encoder.encode(event)


# The encoding starts with the device id, a canonical 36-character UUID: {"deviceId":"<id>",...
_KEY = slice(len(b'{"deviceId":"'), len(b'{"deviceId":"') + 36)


def encode_record(event: Biometrics) -> tuple[bytes, bytes]:
    """The record's key and value at once; the key is cut from the value (no second encoding)."""
    value = _encoder.encode(event)
    return value[_KEY], value


def json_schema() -> dict[str, Any]:
    """The event's JSON Schema as one self-contained draft-07 document, the readings under
    "definitions": what the Schema Registry stores, and what any validator can resolve."""
    (root,), components = msgspec.json.schema_components(
        [Biometrics], ref_template="#/definitions/{name}"
    )
    event = components.pop(root["$ref"].rpartition("/")[2])
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        **event,
        "definitions": components,
    }


@functools.cache
def _batch_decoder(max_events: int) -> tuple[msgspec.json.Decoder[list[Biometrics]], Any]:
    batch_type = Annotated[list[Biometrics], Meta(min_length=1, max_length=max_events)]
    return msgspec.json.Decoder(batch_type), batch_type


def _decode(decoder: msgspec.json.Decoder[T], target: Any, data: bytes | str) -> T:
    """The fast decoder's result, or the second look's when it refuses; InvalidEvent otherwise."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError:
        decoded: T = _second_look(data, target)
        return decoded
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise _malformed(error) from None


def _malformed(error: Exception) -> InvalidEvent:
    return InvalidEvent([Problem("", f"Invalid JSON: {error}")], malformed=True)


def _second_look(data: bytes | str, target: Any) -> Any:
    """Accept whole floats as integers, or name every problem; the refused path only."""
    try:
        document = _whole_floats_as_ints(msgspec.json.decode(data))
        try:
            return msgspec.convert(document, target, strict=True)
        except msgspec.ValidationError:
            raise InvalidEvent(_problems(document, target, "")) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise _malformed(error) from None
    except RecursionError:
        raise InvalidEvent([Problem("", "nested too deeply")], malformed=True) from None


def _whole_floats_as_ints(value: Any) -> Any:
    # The schema has no float field, so any whole float is meant as an integer.
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    return value


def _problems(value: Any, annotation: Any, path: str) -> list[Problem]:
    """Every problem of `value` as `annotation`, each at its own path; [] when it is valid."""
    try:
        msgspec.convert(value, annotation, strict=True)
    except msgspec.ValidationError as error:
        first = _problem(error, path)
    else:
        return []
    inner = typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else None
    inner = inner or annotation
    found: list[Problem] = []
    if isinstance(inner, type) and issubclass(inner, Struct) and isinstance(value, dict):
        fields = msgspec.structs.fields(inner)
        if inner.__struct_config__.forbid_unknown_fields:
            known = {field.encode_name for field in fields}
            found += [
                Problem(_join(path, key), "unknown field") for key in value if key not in known
            ]
        for field in fields:
            where = _join(path, field.encode_name)
            if field.encode_name in value:
                found += _problems(value[field.encode_name], field.type, where)
            elif field.required:
                found.append(Problem(where, "field required"))
    elif typing.get_origin(inner) is list and isinstance(value, list) and first.path != path:
        # A list of the wrong length is one problem, whatever its items are.
        (item,) = typing.get_args(inner)
        for index, element in enumerate(value):
            found += _problems(element, item, _index(path, index))
    return found or [first]


def _problem(error: msgspec.ValidationError, path: str) -> Problem:
    message, _, where = str(error).rpartition(" - at `$")
    if not message:
        return Problem(path, str(error))
    where = where.rstrip("`")
    return Problem(path + where if path else where.lstrip("."), message)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _index(path: str, index: int) -> str:
    return f"{path}[{index}]"
