"""The messages of the AsyncAPI document (shared.contracts.asyncapi): each topic's record as it is
written, its key, its headers and its value, framed in Confluent's wire format or not.

The header names are the constants of the modules that write them; a value's schema is a
reference to the one msgspec generates from its definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.contracts.schema import Biometrics
from shared.contracts.zones import HeartRateZoneReached
from shared.kafka.headers import (
    DLQ_ERROR,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_VALUE_OMITTED,
    IDEMPOTENCY_KEY,
    REQUEST_ID,
    TRACEPARENT,
    TRACESTATE,
)
from shared.kafka.records import MAX_DEAD_LETTER_VALUE_BYTES
from shared.kafka.registry import HEADER_SIZE, MAGIC_BYTE, value_subject
from shared.runtime.settings import Settings

__all__ = [
    "BINDING_VERSION",
    "DEAD_LETTER",
    "SCHEMA_REF",
    "asyncapi_messages",
]

BINDING_VERSION = "0.5.0"
SCHEMA_REF = "#/components/schemas/{name}"
DEAD_LETTER = "DeadLetter"  # the dead letter's message: its value follows no schema


def _text(description: str, **keywords: str) -> dict[str, Any]:
    return {"type": "string", **keywords, "description": description}


_TRACE_HEADERS = {
    TRACEPARENT: _text(
        "The W3C trace context of the HTTP request the event came in: the client's own when it "
        "sent a valid one, else a trace the producer started (not sampled); with "
        "tracing.exporter set, the context of the span that produced or processed the record.",
        pattern="^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
    ),
    TRACESTATE: _text("The W3C tracestate that came with a valid traceparent, if any."),
    REQUEST_ID: _text(
        "The producer's request id, as in its X-Request-ID answer and its access log: the "
        "client's own when it sent a safe one, else one the producer made."
    ),
}
_IDEMPOTENCY_HEADER = {
    IDEMPOTENCY_KEY: _text(
        "Only when the request had an Idempotency-Key: the key for POST /biometrics, "
        '"<key>#<n>" for the n-th event (from 0) of POST /biometrics/batch. Records with the '
        "same value are copies of one event, which the consumers drop."
    ),
}
_DEAD_LETTER_HEADERS = {
    DLQ_ERROR: _text("Why the record was set aside."),
    DLQ_ORIGINAL_TOPIC: _text("The topic the record was read from."),
    DLQ_ORIGINAL_PARTITION: _text("Its partition, in decimal."),
    DLQ_ORIGINAL_OFFSET: _text("Its offset, in decimal."),
    DLQ_VALUE_OMITTED: _text("Present when the value is left out, being too large to produce."),
}


def asyncapi_messages(settings: Settings, device_id: dict[str, Any]) -> dict[str, Any]:
    """The message of each topic, by name; `device_id` is the schema of the events' deviceId,
    their key."""
    framed = bool(settings.schema_registry.url)
    return {
        Biometrics.__name__: _event_message(
            Biometrics.__name__,
            "A fitness tracker's biometrics, as the producer accepted them over HTTP.",
            _headers({**_TRACE_HEADERS, **_IDEMPOTENCY_HEADER}, [TRACEPARENT, REQUEST_ID]),
            device_id,
            settings.kafka.topic if framed else None,
        ),
        HeartRateZoneReached.__name__: _event_message(
            HeartRateZoneReached.__name__,
            "A heart-rate reading in a zone; its headers are the trace headers of the Biometrics "
            "record it came from.",
            _headers(_TRACE_HEADERS),
            device_id,
            settings.zones.topic if framed else None,
        ),
        DEAD_LETTER: _dead_letter_message(),
    }


def _headers(properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    headers: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        headers["required"] = list(required)
    return headers


def _event_message(
    name: str, summary: str, headers: dict[str, Any], key: dict[str, Any], topic: str | None
) -> dict[str, Any]:
    """An event's message; with `topic`, its values are framed with the id of the schema
    registered for that topic."""
    binding: dict[str, Any] = {
        "key": {
            **key,
            "description": "The device id, the value's deviceId: a device's records "
            "share a partition, in order.",
        },
    }
    description = "The value is the event as compact JSON."
    if topic is not None:
        binding |= {
            "schemaIdLocation": "payload",
            "schemaIdPayloadEncoding": "confluent",
            "schemaLookupStrategy": "TopicNameStrategy",
        }
        description = (
            f"The value is the byte {MAGIC_BYTE}, the schema id in {HEADER_SIZE - 1} bytes "
            "big-endian, then the event as compact JSON (Confluent's wire format); the schema "
            f"is registered under the subject {value_subject(topic)}."
        )
    return {
        "name": name,
        "title": name,
        "summary": summary,
        "description": description
        + " The payload schema is what this version writes; the services' readers ignore fields "
        "they do not know, so a newer writer's optional fields reach them (docs/"
        "changing-events.md).",
        "contentType": "application/json",
        "headers": headers,
        "payload": {"$ref": SCHEMA_REF.format(name=name)},
        "bindings": {"kafka": {**binding, "bindingVersion": BINDING_VERSION}},
    }


def _dead_letter_message() -> dict[str, Any]:
    headers = {**_TRACE_HEADERS, **_IDEMPOTENCY_HEADER, **_DEAD_LETTER_HEADERS}
    required = [DLQ_ERROR, DLQ_ORIGINAL_TOPIC, DLQ_ORIGINAL_PARTITION, DLQ_ORIGINAL_OFFSET]
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A record of the events topic that could not be handled, with why and "
        "where from.",
        "description": "The record as it was read, its key, value and headers, with the dlq.* "
        f"headers added; a value over {MAX_DEAD_LETTER_VALUE_BYTES} bytes is left out, with "
        f"{DLQ_VALUE_OMITTED}. The headers listed are those of the services' own records.",
        "contentType": "application/octet-stream",
        "headers": _headers(headers, required),
        "payload": {
            "description": "The record's value as it was read, framed or not, JSON or not: any "
            "bytes. None when it had none, or when it is left out."
        },
        "bindings": {
            "kafka": {
                "key": _text(
                    "The record's key as it was read; empty when it had none and its value is "
                    "left out."
                ),
                "bindingVersion": BINDING_VERSION,
            }
        },
    }
