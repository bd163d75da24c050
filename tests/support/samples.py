"""Sample events as a tracker posts them, records as aiokafka hands them to a consumer, and
Kafka's own partitioner hashes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from aiokafka import ConsumerRecord, TopicPartition

TOPIC = "BiometricsImported"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)

# Kafka's own murmur2 test vectors (clients/src/test/.../utils/UtilsTest.java, testMurmur2).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def record(
    partition: int,
    offset: int,
    value: bytes | None = b"v",
    key: bytes | None = b"k",
    headers: Sequence[tuple[str, bytes]] = (),
) -> ConsumerRecord[bytes, bytes]:
    """A consumed record of TOPIC, as aiokafka hands it over."""
    size = len(value or b"")
    return ConsumerRecord(
        TOPIC, partition, offset, 0, 0, key, value, None, len(key or b""), size, list(headers)
    )


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
