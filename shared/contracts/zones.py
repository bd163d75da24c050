"""Heart-rate zones: the course's rule and the HeartRateZoneReached event, one msgspec definition.

The rule, per heart-rate reading, with ``pct = value / maxHeartRate``:

========  ======
pct       zone
========  ======
>= 0.9    Zone5
>= 0.8    Zone4
>= 0.7    Zone3
>= 0.6    Zone2
>= 0.5    Zone1
< 0.5     none: the reading produces no event
========  ======

The event, one per reading that has a zone:

============  ================================================================
field         value
============  ================================================================
deviceId      the Biometrics event's device id, a UUID as a string
zone          the string "Zone1", "Zone2", "Zone3", "Zone4" or "Zone5"
dateTime      the reading's time, ISO-8601 with its UTC offset
heartRate     the reading, beats per minute
maxHeartRate  the Biometrics event's maximum heart rate, beats per minute
============  ================================================================

On the wire the event is compact JSON keyed by ``deviceId``, like Biometrics.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import msgspec
import orjson
from msgspec import Meta, Struct

from shared.contracts.schema import AwareDatetime, Biometrics

__all__ = [
    "HeartRateZoneReached",
    "Zone",
    "parse_zone_event",
    "zone_for",
    "zone_json_schema",
    "zone_records",
]


class Zone(StrEnum):
    """A heart-rate zone, encoded as its name."""

    ZONE1 = "Zone1"
    ZONE2 = "Zone2"
    ZONE3 = "Zone3"
    ZONE4 = "Zone4"
    ZONE5 = "Zone5"


# The zone by whole tenths of the maximum reached, 9 tenths and more being Zone5: integer
# arithmetic keeps 0.9 exact.
_ZONE_BY_TENTHS = (None, None, None, None, None, Zone.ZONE1, Zone.ZONE2, Zone.ZONE3, Zone.ZONE4)


class HeartRateZoneReached(Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A device's heart rate reached a zone."""

    deviceId: UUID
    zone: Annotated[Zone, Meta(description="Zone1 (>= 50% of maxHeartRate) to Zone5 (>= 90%)")]
    dateTime: AwareDatetime
    heartRate: int
    maxHeartRate: int


def zone_for(heart_rate: int, max_heart_rate: int) -> Zone | None:
    """The zone of one reading, or None below half the maximum."""
    if max_heart_rate <= 0:
        raise ValueError(f"max_heart_rate must be positive, not {max_heart_rate}")
    tenths = 10 * heart_rate // max_heart_rate
    if tenths >= 9:
        return Zone.ZONE5
    return _ZONE_BY_TENTHS[tenths] if tenths >= 0 else None


def zone_records(event: Biometrics) -> list[tuple[bytes, bytes]]:
    """The record of each HeartRateZoneReached of the event, one per heart-rate reading that has
    a zone, in reading order: the key is the device id, so a device's zone events share a
    partition; the value is the event as compact JSON, the zone as its name."""
    device_id = str(event.deviceId)
    key = device_id.encode()
    records = []
    for reading in event.heartRates:
        zone = zone_for(reading.value, event.maxHeartRate)
        if zone is not None:
            # orjson, not msgspec: it writes a UTC time as "+00:00", as zone events always have.
            value = {
                "deviceId": device_id,
                "zone": zone,
                "dateTime": reading.dateTime,
                "heartRate": reading.value,
                "maxHeartRate": event.maxHeartRate,
            }
            records.append((key, orjson.dumps(value)))
    return records


def parse_zone_event(data: bytes | str) -> HeartRateZoneReached:
    """An event from its JSON; msgspec.ValidationError or DecodeError when it is not one."""
    return _zone_decoder.decode(data)


def zone_json_schema() -> dict[str, Any]:
    """The event's JSON Schema, registered under the zones topic: the event itself, its zone
    enum under "$defs"."""
    (root,), components = msgspec.json.schema_components(
        [HeartRateZoneReached], ref_template="#/$defs/{name}"
    )
    event = components.pop(root["$ref"].rpartition("/")[2])
    # msgspec leaves an enum's type implicit; a validator that checks types first wants it.
    components[Zone.__name__] = {**components[Zone.__name__], "type": "string"}
    return {**event, "$defs": components}


_zone_decoder: msgspec.json.Decoder[HeartRateZoneReached] = msgspec.json.Decoder(
    HeartRateZoneReached
)
