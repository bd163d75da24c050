from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from consumer_service import RecordProcessor, StreamSink
from tests.support import FlakySink, RecordingDeadLetters, event_body
from tests.unit.test_consumer_loop import TOPIC, record


def _processor(sink: Any, dead_letters: RecordingDeadLetters, retries: int = 2) -> RecordProcessor:
    return RecordProcessor(
        sink, dead_letters, max_record_bytes=4096, retries=retries, retry_backoff_s=0
    )


async def test_a_consumed_event_is_one_json_line_with_its_coordinates() -> None:
    stream = io.BytesIO()
    dead_letters = RecordingDeadLetters()
    body = event_body()
    processor = _processor(StreamSink(stream), dead_letters)
    await processor.process(record(2, 41, orjson.dumps(body), key=body["deviceId"].encode()))
    assert stream.getvalue() == b""  # lines are written when the batch is flushed
    await processor.flush()
    [raw] = stream.getvalue().splitlines()
    line = orjson.loads(raw)
    assert line["message"] == "event consumed"
    assert (line["topic"], line["partition"], line["offset"]) == (TOPIC, 2, 41)
    assert line["key"] == body["deviceId"]
    assert line["event"]["heartRates"][0]["value"] == body["heartRates"][0]["value"]
    assert dead_letters.letters == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json", "Invalid JSON"),
        (orjson.dumps({"deviceId": "x"}), "deviceId"),
        (None, "no value"),
        (b" " * 5000, "max_record_bytes"),
    ],
    ids=["not-json", "wrong-schema", "tombstone", "oversized"],
)
async def test_a_poison_record_is_set_aside_with_its_reason_and_not_written(
    value: bytes | None, reason: str
) -> None:
    sink, dead_letters = FlakySink(0), RecordingDeadLetters()
    processor = _processor(sink, dead_letters)
    await processor.process(record(1, 7, value))
    await processor.flush()
    [(letter, why)] = dead_letters.letters
    assert (letter.partition, letter.offset) == (1, 7)
    assert reason in why
    assert sink.lines == []
    assert processor.counts.dead_lettered == 1


async def test_a_failing_sink_is_retried_then_succeeds() -> None:
    sink, dead_letters = FlakySink(2), RecordingDeadLetters()
    processor = _processor(sink, dead_letters, retries=2)
    await processor.process(record(0, 0, orjson.dumps(event_body())))
    await processor.flush()
    assert len(sink.lines) == 1
    assert processor.counts.retries == 2
    assert dead_letters.letters == []


async def test_a_sink_failing_past_the_retries_sets_the_records_of_the_write_aside() -> None:
    sink, dead_letters = FlakySink(3), RecordingDeadLetters()
    processor = _processor(sink, dead_letters, retries=2)
    await processor.process(record(0, 0, orjson.dumps(event_body())))
    await processor.process(record(0, 1, orjson.dumps(event_body())))
    await processor.flush()
    assert sink.lines == []
    assert [letter.offset for letter, _ in dead_letters.letters] == [0, 1]
    (_, why), _ = dead_letters.letters
    assert "handling failed 3 times" in why and "stdout closed" in why


async def test_a_value_spanning_lines_still_makes_exactly_one_line() -> None:
    stream = io.BytesIO()
    body = orjson.dumps(event_body(), option=orjson.OPT_INDENT_2)
    assert b"\n" in body
    processor = _processor(StreamSink(stream), RecordingDeadLetters())
    await processor.process(record(0, 0, body))
    await processor.flush()
    [raw] = stream.getvalue().splitlines()
    assert orjson.loads(raw)["event"]["maxHeartRate"] == 190
