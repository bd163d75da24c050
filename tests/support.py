"""Builders of sample events shared by the unit and integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4


def event_body(device_id: str | None = None, readings: int = 3, **overrides: Any) -> dict[str, Any]:
    """A valid Biometrics body as a tracker would post it; overrides replace top-level fields."""
    start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    body: dict[str, Any] = {
        "deviceId": device_id or str(uuid4()),
        "heartRates": [
            {"dateTime": (start + timedelta(seconds=i)).isoformat(), "value": 70 + i}
            for i in range(readings)
        ],
        "stepCounts": [
            {"dateTime": (start + timedelta(seconds=i)).isoformat(), "value": 10 * i}
            for i in range(readings)
        ],
        "maxHeartRate": 190,
    }
    body.update(overrides)
    return body
