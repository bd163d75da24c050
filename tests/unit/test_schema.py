from __future__ import annotations

from uuid import UUID

import jsonschema
import orjson
import pytest

from shared.schema import (
    HEART_RATE_MAX,
    MAX_READINGS,
    InvalidEvent,
    encode_key,
    encode_record,
    encode_value,
    json_schema,
    parse_event,
    parse_events,
)
from tests.support.samples import event_body


def _error_paths(error: pytest.ExceptionInfo[InvalidEvent]) -> set[str]:
    return {problem.path for problem in error.value.problems}


def test_a_valid_event_round_trips_through_the_wire_encoding() -> None:
    body = event_body()
    event = parse_event(orjson.dumps(body))
    assert parse_event(encode_value(event)) == event
    assert orjson.loads(encode_value(event))["deviceId"] == body["deviceId"]


def test_the_record_key_cut_from_the_value_is_the_canonical_device_id() -> None:
    body = event_body(deviceId="3FA85F64-5717-4562-B3FC-2C963F66AFA6")
    event = parse_event(orjson.dumps(body))
    key, value = encode_record(event)
    assert key == b"3fa85f64-5717-4562-b3fc-2c963f66afa6" == encode_key(event)
    assert value == encode_value(event)


def test_the_record_key_is_the_device_id() -> None:
    body = event_body()
    assert encode_key(parse_event(orjson.dumps(body))) == body["deviceId"].encode()


def test_timestamps_without_a_utc_offset_are_rejected() -> None:
    body = event_body()
    body["heartRates"][1]["dateTime"] = "2026-11-25T08:00:01"
    with pytest.raises(InvalidEvent) as error:
        parse_event(orjson.dumps(body))
    assert _error_paths(error) == {"heartRates[1].dateTime"}


def test_timestamps_keep_their_offset_on_the_wire() -> None:
    body = event_body()
    body["stepCounts"][0]["dateTime"] = "2026-11-25T09:00:00+01:00"
    value = orjson.loads(encode_value(parse_event(orjson.dumps(body))))
    assert value["stepCounts"][0]["dateTime"] == "2026-11-25T09:00:00+01:00"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("deviceId", "not-a-uuid"),
        ("maxHeartRate", 99),
        ("maxHeartRate", 251),
        ("maxHeartRate", "190"),
        ("maxHeartRate", 190.5),
        ("maxHeartRate", True),
    ],
)
def test_implausible_top_level_values_are_rejected(field: str, value: object) -> None:
    with pytest.raises(InvalidEvent) as error:
        parse_event(orjson.dumps(event_body(**{field: value})))
    assert _error_paths(error) == {field}


@pytest.mark.parametrize(
    ("series", "value"),
    [("heartRates", 24), ("heartRates", HEART_RATE_MAX + 1), ("stepCounts", -1)],
)
def test_implausible_readings_are_rejected(series: str, value: int) -> None:
    body = event_body()
    body[series][2]["value"] = value
    with pytest.raises(InvalidEvent) as error:
        parse_event(orjson.dumps(body))
    assert _error_paths(error) == {f"{series}[2].value"}


def test_more_readings_than_the_maximum_are_rejected() -> None:
    body = event_body(readings=MAX_READINGS + 1)
    with pytest.raises(InvalidEvent) as error:
        parse_event(orjson.dumps(body))
    assert _error_paths(error) == {"heartRates", "stepCounts"}


def test_unknown_fields_are_rejected_rather_than_dropped() -> None:
    with pytest.raises(InvalidEvent) as error:
        parse_event(orjson.dumps(event_body(heartRate=[])))
    assert _error_paths(error) == {"heartRate"}


def test_a_batch_names_the_bad_event_by_its_index() -> None:
    bad = event_body(maxHeartRate=10)
    with pytest.raises(InvalidEvent) as error:
        parse_events(orjson.dumps([event_body(), bad]), max_events=5)
    assert _error_paths(error) == {"[1].maxHeartRate"}


def test_a_batch_is_bounded_and_never_empty() -> None:
    with pytest.raises(InvalidEvent):
        parse_events(b"[]", max_events=2)
    with pytest.raises(InvalidEvent):
        parse_events(orjson.dumps([event_body()] * 3), max_events=2)
    assert len(parse_events(orjson.dumps([event_body()] * 2), max_events=2)) == 2


def test_the_json_schema_documents_the_camel_case_fields_and_bounds() -> None:
    schema = json_schema()
    assert set(schema["required"]) == {"deviceId", "heartRates", "stepCounts", "maxHeartRate"}
    assert schema["properties"]["deviceId"]["format"] == "uuid"
    assert schema["properties"]["maxHeartRate"]["maximum"] == 250


def test_the_json_schema_is_self_contained_and_agrees_with_validation() -> None:
    validator = jsonschema.Draft7Validator(json_schema())
    validator.validate(event_body())  # every $ref resolves inside the document
    bad = event_body()
    bad["heartRates"][1]["value"] = -1
    [error] = validator.iter_errors(bad)
    assert list(error.absolute_path) == ["heartRates", 1, "value"]
    with pytest.raises(InvalidEvent, match=r"heartRates\[1\]\.value"):
        parse_event(orjson.dumps(bad))


def test_a_parsed_event_has_a_uuid_device_id() -> None:
    assert isinstance(parse_event(orjson.dumps(event_body())).deviceId, UUID)


def test_a_whole_number_written_with_a_decimal_point_is_an_integer() -> None:
    event = parse_event(orjson.dumps(event_body(maxHeartRate=190.0)))
    assert event.maxHeartRate == 190 and type(event.maxHeartRate) is int
