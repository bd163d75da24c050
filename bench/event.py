"""The standard event: 10 heart rates and 10 step counts, about 1 KB of JSON, and its files."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from shared.schema import encode_key, encode_value, parse_event

READINGS = 10
# A fixed, valid device id wrk replaces with a unique one per request.
PLACEHOLDER_DEVICE_ID = "00000000-0000-4000-8000-000000000000"

_START = datetime(2026, 11, 25, 10, 41, 16, 123000, tzinfo=UTC)


def standard_event(device_id: str) -> dict[str, Any]:
    """One event as a tracker posts it: 10 heart rates, 10 step counts, millisecond times."""

    def at(second: int) -> str:
        return (_START + timedelta(seconds=second)).isoformat(timespec="milliseconds")

    return {
        "deviceId": device_id,
        # 80 to 188 bpm against a maximum of 190: readings in every zone and below them, so the
        # zone processor has events to produce.
        "heartRates": [{"dateTime": at(i), "value": 80 + 12 * i} for i in range(READINGS)],
        "stepCounts": [{"dateTime": at(i), "value": 12 * i} for i in range(READINGS)],
        "maxHeartRate": 190,
    }


def event_bodies(count: int) -> list[bytes]:
    """`count` request bodies of the standard event, each with its own device id."""
    return [orjson.dumps(standard_event(str(uuid.uuid4()))) for _ in range(count)]


def batch_bodies(count: int, events_per_batch: int) -> list[bytes]:
    """`count` JSON arrays of `events_per_batch` standard events, for the batch endpoint."""
    return [
        orjson.dumps([standard_event(str(uuid.uuid4())) for _ in range(events_per_batch)])
        for _ in range(count)
    ]


def record_lines(bodies: list[bytes]) -> list[bytes]:
    """`key<TAB>value` lines holding exactly the records the producer service would send."""
    lines = []
    for body in bodies:
        event = parse_event(body)
        lines.append(encode_key(event) + b"\t" + encode_value(event))
    return lines


def template_body() -> bytes:
    """One body whose device id is PLACEHOLDER_DEVICE_ID."""
    return orjson.dumps(standard_event(PLACEHOLDER_DEVICE_ID))


def write_lines(path: Path, lines: list[bytes]) -> Path:
    """Write one item a line (none may contain a newline); return the path."""
    if any(b"\n" in line for line in lines):
        raise ValueError("a line holds a newline")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path
