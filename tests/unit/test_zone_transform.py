"""ZoneTransform: zone events for a valid record, a dead letter for a poison one."""

from __future__ import annotations

import orjson
import pytest

from tests.support.samples import event_body, record
from zones_service.transform import ZoneTransform


def _transform(max_record_bytes: int = 4096) -> ZoneTransform:
    return ZoneTransform(
        zones_topic="zones", dead_letter_topic="dlq", max_record_bytes=max_record_bytes
    )


def test_a_valid_record_becomes_its_zone_events_keyed_by_device() -> None:
    body = event_body(readings=3, maxHeartRate=100)  # readings 70, 71, 72: Zone3 each
    output = _transform()(record(2, 7, orjson.dumps(body)))
    assert (output.topic, output.headers) == ("zones", [])
    assert [key for key, _ in output.records] == [body["deviceId"].encode()] * 3
    assert [orjson.loads(value or b"")["zone"] for _, value in output.records] == ["Zone3"] * 3


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, b"no value"),
        (b"not json", b"Invalid JSON"),
        (orjson.dumps({"deviceId": "x"}), b"deviceId"),
        (orjson.dumps({**event_body(), "padding": "x" * 5000}), b"max_record_bytes"),
    ],
)
def test_a_poison_record_becomes_one_dead_letter_with_its_reason_and_origin(
    value: bytes | None, reason: bytes
) -> None:
    letter = _transform()(record(2, 7, value))
    headers = dict(letter.headers)
    assert (letter.topic, letter.records) == ("dlq", [(b"k", value)])
    assert reason in headers["dlq.error"]
    assert (headers["dlq.original.topic"], headers["dlq.original.partition"]) == (
        b"BiometricsImported",
        b"2",
    )
    assert headers["dlq.original.offset"] == b"7"


def test_a_dead_letter_too_large_to_produce_keeps_its_headers_but_not_its_value() -> None:
    letter = _transform()(record(2, 7, b"x" * 1_000_000, key=None))
    assert letter.records == [(b"", None)]
    assert b"too large" in dict(letter.headers)["dlq.value-omitted"]
