"""The rules every consumer shares: why a record is poison, and what its dead letter carries; and
the one format of an error's location, in HTTP answers, dead letters and settings errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shared.contracts.schema import location
from shared.kafka.records import (
    MAX_DEAD_LETTER_VALUE_BYTES,
    PoisonRecordError,
    SchemaIds,
    dead_letter,
    decode_record,
)
from shared.kafka.registry import UnknownSchemaError, frame_prefix
from shared.runtime.settings import SettingsError, load_settings
from tests.support import ROOT
from tests.support.samples import TOPIC, event_body, record


def test_a_location_joins_names_with_dots_and_puts_indexes_in_brackets() -> None:
    assert location(["heartRates", 1, "value"]) == "heartRates[1].value"
    assert location([3, "maxHeartRate"]) == "[3].maxHeartRate"
    assert location(["http", "api_keys", 0]) == "http.api_keys[0]"
    assert location([]) == ""


def test_a_poison_record_names_each_bad_field_in_the_http_format() -> None:
    body = event_body()
    body["heartRates"][1]["value"] = -1
    del body["maxHeartRate"]
    with pytest.raises(PoisonRecordError) as error:
        decode_record(record(1, 9, orjson.dumps(body)), max_record_bytes=4096)
    reasons = str(error.value).split("; ")
    assert [reason.split(":")[0] for reason in reasons] == ["heartRates[1].value", "maxHeartRate"]
    with pytest.raises(PoisonRecordError, match=r"^value: Invalid JSON"):
        decode_record(record(1, 9, b"{"), max_record_bytes=4096)


def test_a_settings_error_names_a_list_item_in_the_same_format() -> None:
    env = {"BIOMETRICS_HTTP__API_KEYS": '["long-enough-key-0123456789", 5]'}
    with pytest.raises(SettingsError, match=r"http\.api_keys\[1\] "):
        load_settings(ROOT, env)


def test_a_dead_letter_keeps_key_value_and_says_why_and_where_from() -> None:
    key, value, headers = dead_letter(record(1, 9, b"not json", key=b"device"), "Invalid JSON")
    assert (key, value) == (b"device", b"not json")
    assert dict(headers) == {
        "dlq.error": b"Invalid JSON",
        "dlq.original.topic": TOPIC.encode(),
        "dlq.original.partition": b"1",
        "dlq.original.offset": b"9",
    }


def test_a_dead_letter_keeps_the_records_headers_its_trace_context_first() -> None:
    carried = [
        ("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"),
        ("x-request-id", b"r1"),
    ]
    letter = dead_letter(record(0, 3, b"not json", headers=carried), "Invalid JSON")
    assert letter.headers[:2] == carried
    assert dict(letter.headers)["dlq.error"] == b"Invalid JSON"


def test_a_value_too_large_to_produce_is_left_out_and_an_empty_key_stands_in() -> None:
    fits = dead_letter(record(1, 9, b"x" * MAX_DEAD_LETTER_VALUE_BYTES, key=None), "too large")
    assert fits.value is not None and fits.key is None
    omitted = dead_letter(
        record(1, 9, b"x" * (MAX_DEAD_LETTER_VALUE_BYTES + 1), key=None), "too large"
    )
    assert (omitted.key, omitted.value) == (b"", None)
    assert dict(omitted.headers)["dlq.value-omitted"] == b"too large for the dead-letter topic"


def test_a_value_in_the_registrys_wire_format_decodes_like_plain_json() -> None:
    body = event_body()
    framed = frame_prefix(7) + orjson.dumps(body)
    event, payload = decode_record(record(1, 9, framed), max_record_bytes=4096)
    assert str(event.deviceId) == body["deviceId"]
    assert payload == orjson.dumps(body)


class _Registry:
    """Knows schema id 7 only."""

    async def schema(self, schema_id: int) -> dict[str, Any]:
        if schema_id != 7:
            raise UnknownSchemaError(f"no schema id {schema_id}")
        return {}


async def test_a_schema_id_the_registry_does_not_know_makes_a_poison_record() -> None:
    body = orjson.dumps(event_body())
    known, unknown = record(1, 8, frame_prefix(7) + body), record(1, 9, frame_prefix(404) + body)
    schema_ids = SchemaIds(_Registry())  # type: ignore[arg-type]
    await schema_ids.check([known, unknown])
    assert decode_record(known, max_record_bytes=4096, schema_ids=schema_ids)[1] == body
    with pytest.raises(PoisonRecordError, match="schema id 404 is not in the schema registry"):
        decode_record(unknown, max_record_bytes=4096, schema_ids=schema_ids)
