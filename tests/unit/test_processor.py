from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from consumer_service import EVENT_CONSUMED, ConsumerMetrics, RecordProcessor, StreamSink
from consumer_service.processor import ProcessorStoppedError
from shared.kafka.dedupe import Duplicates
from shared.kafka.registry import frame_prefix
from tests.support.fakes import FlakySink, RecordingDeadLetters
from tests.support.samples import P0, P1, TOPIC, event_body, record


def _processor(sink: Any, dead_letters: Any, retries: int = 2) -> RecordProcessor:
    return RecordProcessor(
        sink, dead_letters, max_record_bytes=4096, retries=retries, retry_backoff_s=0
    )


def _valid(partition: int, offset: int) -> Any:
    body = event_body()
    return record(partition, offset, orjson.dumps(body), key=body["deviceId"].encode())


class GatedDeadLetters(RecordingDeadLetters):
    """Acknowledges a dead letter only once `acknowledge` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = asyncio.Event()
        self.acknowledge = asyncio.Event()

    async def set_aside(self, record: Any, reason: str) -> None:
        self.sent.set()
        await self.acknowledge.wait()
        await super().set_aside(record, reason)


class UnreachableDeadLetters:
    async def set_aside(self, record: Any, reason: str) -> None:
        raise KafkaTimeoutError("dead-letter topic unreachable")


class GatedSink:
    """Keeps lines; each write waits until `gate` is set (it runs on a worker thread)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.gate = threading.Event()
        self.entered = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def write_lines(self, lines: Sequence[bytes]) -> None:
        self._loop.call_soon_threadsafe(self.entered.set)
        self.gate.wait(timeout=10)
        self.lines.extend(lines)


async def test_a_consumed_event_is_one_json_line_with_its_coordinates() -> None:
    stream = io.BytesIO()
    dead_letters = RecordingDeadLetters()
    body = event_body()
    processor = _processor(StreamSink(stream), dead_letters)
    tp = TopicPartition(TOPIC, 2)
    await processor.process(tp, [record(2, 41, orjson.dumps(body), key=body["deviceId"].encode())])
    assert stream.getvalue() == b""  # lines are written when the batch is flushed
    assert await processor.flush() == {tp: 42}
    [raw] = stream.getvalue().splitlines()
    line = orjson.loads(raw)
    assert list(line) == [
        "time", "level", "logger", "message", "topic", "partition", "offset", "key", "request_id",
        "idempotency_key", "traceparent", "age_ms", "event",
    ]  # fmt: skip
    assert (line["level"], line["logger"]) == ("info", "consumer_service.events")
    assert line["message"] == EVENT_CONSUMED
    assert (line["topic"], line["partition"], line["offset"]) == (TOPIC, 2, 41)
    assert line["key"] == body["deviceId"]
    # A record without headers.
    assert (line["request_id"], line["idempotency_key"], line["traceparent"]) == (None, None, None)
    assert line["event"] == body
    assert dead_letters.letters == []


async def test_the_line_carries_the_records_request_id_and_traceparent() -> None:
    stream = io.BytesIO()
    traceparent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    # Any client may write any bytes into a header: the line stays one valid JSON object.
    headers = [
        ("traceparent", traceparent),
        ("x-request-id", b'r-1"\n\xff'),
        ("idempotency-key", b"k-1#2"),
        ("other", b"x"),
    ]
    processor = _processor(StreamSink(stream), RecordingDeadLetters())
    value = orjson.dumps(event_body())
    await processor.process(TopicPartition(TOPIC, 0), [record(0, 5, value, headers=headers)])
    await processor.flush()
    [raw] = stream.getvalue().splitlines()
    line = orjson.loads(raw)
    assert line["traceparent"] == traceparent.decode()
    assert line["request_id"] == 'r-1"\n\ufffd'
    assert line["idempotency_key"] == "k-1#2"


async def test_a_value_in_the_registrys_wire_format_is_logged_as_its_json() -> None:
    stream = io.BytesIO()
    body = event_body()
    processor = _processor(StreamSink(stream), RecordingDeadLetters())
    framed = frame_prefix(3) + orjson.dumps(body)
    await processor.process(TopicPartition(TOPIC, 0), [record(0, 5, framed)])
    await processor.flush()
    [raw] = stream.getvalue().splitlines()
    assert orjson.loads(raw)["event"] == body


async def test_each_record_of_a_partition_gets_its_own_line_in_order() -> None:
    stream = io.BytesIO()
    records = [_valid(0, offset) for offset in (7, 8, 9)]
    processor = _processor(StreamSink(stream), RecordingDeadLetters())
    await processor.process(P0, records)
    assert await processor.flush() == {P0: 10}
    lines = [orjson.loads(raw) for raw in stream.getvalue().splitlines()]
    assert [(line["offset"], line["key"]) for line in lines] == [
        (r.offset, r.key.decode()) for r in records
    ]
    assert [line["event"]["deviceId"] for line in lines] == [r.key.decode() for r in records]


async def test_a_key_that_needs_escaping_and_a_missing_key_still_make_valid_json() -> None:
    stream = io.BytesIO()
    value = orjson.dumps(event_body())
    processor = _processor(StreamSink(stream), RecordingDeadLetters())
    await processor.process(P0, [record(0, 0, value, key=b'a"b\\\n\xff'), record(0, 1, value)])
    await processor.flush()
    first, second = (orjson.loads(raw) for raw in stream.getvalue().splitlines())
    assert first["key"] == 'a"b\\\n\ufffd'
    assert second["key"] == "k"


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
    await processor.process(P1, [record(1, 7, value)])
    assert await processor.flush() == {P1: 8}
    [(letter, why)] = dead_letters.letters
    assert (letter.partition, letter.offset) == (1, 7)
    assert reason in why
    assert sink.lines == []
    assert processor.counts.dead_lettered == 1


async def test_a_poison_record_between_valid_ones_is_set_aside_and_the_others_written() -> None:
    sink, dead_letters = FlakySink(0), RecordingDeadLetters()
    processor = _processor(sink, dead_letters)
    await processor.process(P0, [_valid(0, 5), record(0, 6, b"{}"), _valid(0, 7)])
    assert await processor.flush() == {P0: 8}
    assert [orjson.loads(line)["offset"] for line in sink.lines] == [5, 7]
    assert [letter.offset for letter, _ in dead_letters.letters] == [6]
    assert (processor.counts.handled, processor.counts.dead_lettered) == (2, 1)


async def test_a_partition_is_committable_only_once_its_dead_letters_are_acknowledged() -> None:
    sink, dead_letters = FlakySink(0), GatedDeadLetters()
    processor = _processor(sink, dead_letters)
    processing = asyncio.create_task(processor.process(P0, [_valid(0, 0), record(0, 1, b"x")]))
    async with asyncio.timeout(5):
        await dead_letters.sent.wait()
    # A rebalance flushes now: the valid line is written, but P0 is not safe to commit yet.
    assert await processor.flush() == {}
    assert len(sink.lines) == 1
    dead_letters.acknowledge.set()
    async with asyncio.timeout(5):
        await processing
    assert await processor.flush() == {P0: 2}


async def test_a_second_flush_returns_only_after_the_one_under_way() -> None:
    sink = GatedSink()
    processor = _processor(sink, RecordingDeadLetters())
    await processor.process(P0, [_valid(0, 0)])
    loops = asyncio.create_task(processor.flush())
    async with asyncio.timeout(5):
        await sink.entered.wait()
    listeners = asyncio.create_task(processor.flush())  # as a rebalance would, mid-write
    try:
        await asyncio.sleep(0)  # one turn of the loop: enough for a flush with nothing to write
        assert not listeners.done()
    finally:
        sink.gate.set()
    async with asyncio.timeout(5):
        assert await loops == {P0: 1}
        assert await listeners == {}
    assert len(sink.lines) == 1


async def test_after_a_dead_letter_fails_nothing_more_is_handled() -> None:
    sink = FlakySink(0)
    processor = _processor(sink, UnreachableDeadLetters())
    await processor.process(P1, [_valid(1, 0)])
    with pytest.raises(KafkaTimeoutError):
        await processor.process(P0, [record(0, 0, b"x")])
    with pytest.raises(ProcessorStoppedError):
        await processor.flush()
    with pytest.raises(ProcessorStoppedError):
        await processor.process(P0, [_valid(0, 1)])
    assert sink.lines == []


async def test_a_failing_sink_is_retried_then_succeeds() -> None:
    sink, dead_letters = FlakySink(2), RecordingDeadLetters()
    processor = _processor(sink, dead_letters, retries=2)
    await processor.process(P0, [record(0, 0, orjson.dumps(event_body()))])
    assert await processor.flush() == {P0: 1}
    assert len(sink.lines) == 1
    assert processor.counts.retries == 2
    assert dead_letters.letters == []


async def test_a_sink_failing_past_the_retries_sets_the_records_of_the_write_aside() -> None:
    sink, dead_letters = FlakySink(3), RecordingDeadLetters()
    processor = _processor(sink, dead_letters, retries=2)
    await processor.process(P0, [record(0, 0, orjson.dumps(event_body()))])
    await processor.process(P1, [record(1, 1, orjson.dumps(event_body()))])
    assert await processor.flush() == {P0: 1, P1: 2}
    assert sink.lines == []
    assert [(letter.partition, letter.offset) for letter, _ in dead_letters.letters] == [
        (0, 0),
        (1, 1),
    ]
    (_, why), _ = dead_letters.letters
    assert "handling failed 3 times" in why and "stdout closed" in why


async def test_a_value_spanning_lines_still_makes_exactly_one_line() -> None:
    stream = io.BytesIO()
    body = orjson.dumps(event_body(), option=orjson.OPT_INDENT_2)
    assert b"\n" in body
    processor = _processor(StreamSink(stream), RecordingDeadLetters())
    await processor.process(P0, [record(0, 0, body), record(0, 1, body.replace(b"\n", b"\r"))])
    await processor.flush()
    lines = stream.getvalue().split(b"\n")
    assert lines[-1] == b""
    assert [orjson.loads(raw)["event"]["maxHeartRate"] for raw in lines[:-1]] == [190, 190]


async def test_the_set_aside_line_names_the_records_request_id_and_traceparent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    traceparent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = [("traceparent", traceparent), ("x-request-id", b"r-5")]
    processor = _processor(StreamSink(io.BytesIO()), RecordingDeadLetters())
    with caplog.at_level(logging.ERROR):
        await processor.process(TopicPartition(TOPIC, 0), [record(0, 5, b"{", headers=headers)])
    [line] = [r for r in caplog.records if r.name == "consumer_service.processor"]
    assert (line.request_id, line.traceparent) == ("r-5", traceparent.decode())  # type: ignore[attr-defined]


async def test_copies_are_dropped_and_counted_in_the_duplicates_metric() -> None:
    metrics = ConsumerMetrics()
    processor = RecordProcessor(
        FlakySink(failures=0),
        RecordingDeadLetters(),
        max_record_bytes=4096,
        retries=0,
        retry_backoff_s=0,
        metrics=metrics,
        duplicates=Duplicates(records=100, window_s=600, reader_options={}),
    )
    body = orjson.dumps(event_body())
    keys = [b"a", b"b", b"a", b"a", b"c"]
    batch = [record(0, n, body, headers=[("idempotency-key", key)]) for n, key in enumerate(keys)]
    await processor.process(P0, batch)
    await processor.process(P0, [record(0, 5, body, headers=[("idempotency-key", b"b")])])
    assert await processor.flush() == {P0: 6}
    counted = [
        metrics.registry.get_sample_value(name)
        for name in ("biometrics_duplicates_dropped_total", "biometrics_records_handled_total")
    ]
    assert counted == [3, 3]
