"""The course's heart-rate zone rule and the HeartRateZoneReached event."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import pytest

from shared.contracts.schema import Biometrics, parse_event
from shared.contracts.zones import (
    HeartRateZoneReached,
    Zone,
    parse_zone_event,
    zone_for,
    zone_json_schema,
    zone_records,
)
from tests.support.samples import event_body


@pytest.mark.parametrize(
    ("heart_rate", "max_heart_rate", "zone"),
    [
        (49, 100, None),
        (50, 100, Zone.ZONE1),
        (59, 100, Zone.ZONE1),
        (60, 100, Zone.ZONE2),
        (70, 100, Zone.ZONE3),
        (80, 100, Zone.ZONE4),
        (89, 100, Zone.ZONE4),
        (90, 100, Zone.ZONE5),
        (100, 100, Zone.ZONE5),
        (101, 100, Zone.ZONE5),
        (125, 100, Zone.ZONE5),
        (171, 190, Zone.ZONE5),  # exactly 0.9 of the maximum
        (170, 190, Zone.ZONE4),
    ],
)
def test_a_reading_falls_in_the_zone_of_its_share_of_the_maximum(
    heart_rate: int, max_heart_rate: int, zone: Zone | None
) -> None:
    assert zone_for(heart_rate, max_heart_rate) == zone


def test_readings_below_half_the_maximum_produce_no_event() -> None:
    body = event_body(maxHeartRate=200)
    body["heartRates"] = [
        {"dateTime": f"2026-11-25T08:00:{i:02}+00:00", "value": value}
        for i, value in enumerate(range(90, 191, 20))
    ]
    events = [parse_zone_event(value) for _, value in zone_records(_parsed(body))]
    assert [event.zone for event in events] == [
        Zone.ZONE1,
        Zone.ZONE2,
        Zone.ZONE3,
        Zone.ZONE4,
        Zone.ZONE5,
    ]
    assert [event.heartRate for event in events] == [110, 130, 150, 170, 190]


def test_an_event_carries_the_reading_and_is_keyed_by_device() -> None:
    body = event_body(readings=1, maxHeartRate=100)
    body["heartRates"][0]["value"] = 95
    [(key, value)] = zone_records(_parsed(body))
    assert key == body["deviceId"].encode()
    assert orjson.loads(value) == {
        "deviceId": body["deviceId"],
        "zone": "Zone5",
        "dateTime": body["heartRates"][0]["dateTime"],
        "heartRate": 95,
        "maxHeartRate": 100,
    }
    assert parse_zone_event(value) == HeartRateZoneReached(
        UUID(body["deviceId"]),
        Zone.ZONE5,
        datetime.fromisoformat(body["heartRates"][0]["dateTime"]),
        95,
        100,
    )


def test_the_schema_documents_the_zone_as_a_string_enum() -> None:
    schema = zone_json_schema()
    zone = schema["$defs"]["Zone"]
    assert (zone["type"], zone["enum"]) == ("string", ["Zone1", "Zone2", "Zone3", "Zone4", "Zone5"])
    assert set(schema["required"]) == {"deviceId", "zone", "dateTime", "heartRate", "maxHeartRate"}


def test_a_maximum_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        zone_for(100, 0)


def test_the_value_is_compact_json_and_a_utc_time_keeps_its_offset() -> None:
    body = event_body(readings=1, maxHeartRate=100)
    body["heartRates"][0] = {"dateTime": "2026-11-25T08:00:01.5Z", "value": 95}
    [(_, value)] = zone_records(_parsed(body))
    assert value == (
        b'{"deviceId":"%b","zone":"Zone5","dateTime":"2026-11-25T08:00:01.500000+00:00",'
        b'"heartRate":95,"maxHeartRate":100}' % body["deviceId"].encode()
    )


@pytest.mark.parametrize(
    ("offset", "written"),
    [("+00:00", "+00:00"), ("Z", "+00:00"), ("+05:30", "+05:30"), ("-03:00", "-03:00")],
)
def test_zone_records_keep_reading_order_and_each_readings_time_and_offset(
    offset: str, written: str
) -> None:
    body = event_body(readings=10, maxHeartRate=190)
    for index, reading in enumerate(body["heartRates"]):
        reading["value"] = 80 + 12 * index  # below Zone1, then every zone
        reading["dateTime"] = f"2026-11-25T08:00:{index:02}.25{offset}"

    records = zone_records(_parsed(body))

    assert {key for key, _ in records} == {body["deviceId"].encode()}
    zones = [
        ("Zone1", 104),
        ("Zone2", 116),
        ("Zone2", 128),
        ("Zone3", 140),
        ("Zone4", 152),  # exactly 0.8 of the maximum
        ("Zone4", 164),
        ("Zone5", 176),
        ("Zone5", 188),
    ]
    assert [orjson.loads(value) for _, value in records] == [
        {
            "deviceId": body["deviceId"],
            "zone": zone,
            "dateTime": f"2026-11-25T08:00:{index:02}.250000{written}",
            "heartRate": heart_rate,
            "maxHeartRate": 190,
        }
        for index, (zone, heart_rate) in enumerate(zones, start=2)
    ]
    for _, value in records:
        parse_zone_event(value)  # each value is a HeartRateZoneReached, strictly read


def _parsed(body: dict[str, Any]) -> Biometrics:
    return parse_event(orjson.dumps(body))
