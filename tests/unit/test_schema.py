from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import jsonschema
import msgspec
import orjson
import pytest

from shared.contracts.schema import (
    HEART_RATE_MAX,
    MAX_READINGS,
    Biometrics,
    HeartRate,
    InvalidEvent,
    StepCount,
    encode_key,
    encode_record,
    encode_value,
    json_schema,
    parse_event,
    parse_events,
    parse_record,
    tolerant,
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


def test_the_resting_heart_rate_is_optional_and_absent_from_the_record_when_not_sent() -> None:
    old = event_body()
    assert b"restingHeartRate" not in encode_value(parse_event(orjson.dumps(old)))
    new = event_body(restingHeartRate=52)
    value = orjson.loads(encode_value(parse_event(orjson.dumps(new))))
    assert value["restingHeartRate"] == 52
    for wrong in (10, 201, 52.5, "52"):
        with pytest.raises(InvalidEvent) as error:
            parse_event(orjson.dumps(event_body(restingHeartRate=wrong)))
        assert _error_paths(error) == {"restingHeartRate"}


_FIRST_VALUE = "heartRates[0].value"


def _from_a_newer_writer() -> dict[str, Any]:
    body = event_body(restingHeartRate=52, bloodOxygen=[{"value": 97}])
    body["heartRates"][0]["confidence"] = "high"
    return body


def test_the_edge_refuses_unknown_fields_at_every_level() -> None:
    with pytest.raises(InvalidEvent) as error:
        parse_event(orjson.dumps(_from_a_newer_writer()))
    assert _error_paths(error) == {"bloodOxygen", "heartRates[0].confidence"}


def test_records_of_a_newer_writer_are_read_without_the_fields_this_version_does_not_know() -> None:
    body = _from_a_newer_writer()
    event = parse_record(orjson.dumps(body))
    assert isinstance(event, Biometrics)
    assert (event.restingHeartRate, event.heartRates[0].value) == (52, 70)
    # What the zone rule and the line are made of: the event this version knows.
    known = {key: value for key, value in body.items() if key != "bloodOxygen"}
    known["heartRates"][0].pop("confidence")
    assert encode_value(event) == encode_value(parse_event(orjson.dumps(known)))


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda body: body.pop("maxHeartRate"), "maxHeartRate"),
        (lambda body: body["heartRates"][1].pop("value"), "heartRates[1].value"),
        (lambda body: body.update(stepCounts="many"), "stepCounts"),
        (
            lambda body: body["heartRates"][0].update(value=HEART_RATE_MAX + 1),
            "heartRates[0].value",
        ),
    ],
)
def test_records_that_break_the_contract_are_still_refused(
    change: Callable[[dict[str, Any]], object], path: str
) -> None:
    body = _from_a_newer_writer()
    change(body)
    with pytest.raises(InvalidEvent) as error:
        parse_record(orjson.dumps(body))
    assert _error_paths(error) == {path}


def test_the_tolerant_types_have_the_fields_of_the_definitions() -> None:
    for strict in (Biometrics, HeartRate, StepCount):
        lenient = tolerant(strict)
        assert issubclass(lenient, strict)
        assert not lenient.__struct_config__.forbid_unknown_fields
        assert strict.__struct_config__.forbid_unknown_fields
        assert [(f.name, f.required, f.default) for f in msgspec.structs.fields(lenient)] == [
            (f.name, f.required, f.default) for f in msgspec.structs.fields(strict)
        ]
    assert msgspec.json.schema(tolerant(Biometrics))["$defs"]["BiometricsRecord"]["properties"][
        "heartRates"
    ]["items"] == {"$ref": "#/$defs/HeartRateRecord"}
