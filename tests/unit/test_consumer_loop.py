from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from consumer_service import consume, log_record
from shared.logs import configure_logging
from tests.support import event_body

TOPIC = "BiometricsImported"


def _record(partition: int, offset: int, value: bytes | None, key: bytes = b"k") -> Any:
    return ConsumerRecord(
        TOPIC, partition, offset, 0, 0, key, value, None, len(key), len(value or b""), []
    )


class FakeSource:
    """Hands out prepared batches, then sets stop; records every commit."""

    def __init__(self, batches: Sequence[Mapping[TopicPartition, list[Any]]], stop: asyncio.Event):
        self._batches = list(batches)
        self._stop = stop
        self.commits: list[dict[TopicPartition, int]] = []
        self.fail_commits = False

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, list[Any]]:
        if not self._batches:
            self._stop.set()
            return {}
        return self._batches.pop(0)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.fail_commits:
            raise CommitFailedError("rebalanced")
        self.commits.append(dict(offsets))


@pytest.fixture
def json_lines() -> Iterator[Any]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(stream=stream)

    def read() -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in stream.getvalue().splitlines()]

    yield read
    root.handlers[:], level = saved
    root.setLevel(level)


async def test_offsets_are_committed_as_last_offset_plus_one_per_partition() -> None:
    stop = asyncio.Event()
    p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    batch = {p0: [_record(0, 5, b"a"), _record(0, 6, b"b")], p1: [_record(1, 9, b"c")]}
    source = FakeSource([batch], stop)
    handled: list[int] = []
    count = await consume(
        source, lambda r: handled.append(r.offset), stop, poll_timeout_ms=10, max_records=10
    )
    assert count == 3
    assert handled == [5, 6, 9]
    assert source.commits == [{p0: 7, p1: 10}]


async def test_a_failing_handler_leaves_its_batch_uncommitted() -> None:
    stop = asyncio.Event()
    p0 = TopicPartition(TOPIC, 0)
    source = FakeSource([{p0: [_record(0, 0, b"a")]}, {p0: [_record(0, 1, b"b")]}], stop)

    def handle(record: Any) -> None:
        if record.offset == 1:
            raise OSError("stdout is gone")

    with pytest.raises(OSError, match="stdout is gone"):
        await consume(source, handle, stop, poll_timeout_ms=10, max_records=10)
    assert source.commits == [{p0: 1}]


async def test_the_batch_in_hand_is_finished_and_committed_after_stop() -> None:
    stop = asyncio.Event()
    p0 = TopicPartition(TOPIC, 0)
    source = FakeSource([{p0: [_record(0, 0, b"a"), _record(0, 1, b"b")]}], stop)
    handled: list[int] = []

    def handle(record: Any) -> None:
        stop.set()  # the signal arrives mid-batch
        handled.append(record.offset)

    await consume(source, handle, stop, poll_timeout_ms=10, max_records=10)
    assert handled == [0, 1]
    assert source.commits == [{p0: 2}]


async def test_a_commit_lost_to_a_rebalance_does_not_stop_the_loop() -> None:
    stop = asyncio.Event()
    p0 = TopicPartition(TOPIC, 0)
    source = FakeSource([{p0: [_record(0, 0, b"a")]}, {p0: [_record(0, 1, b"b")]}], stop)
    source.fail_commits = True
    handled: list[int] = []
    await consume(
        source, lambda r: handled.append(r.offset), stop, poll_timeout_ms=10, max_records=10
    )
    assert handled == [0, 1]


def test_a_consumed_event_is_one_json_line_with_its_coordinates(json_lines: Any) -> None:
    body = event_body()
    log_record(_record(2, 41, orjson.dumps(body), key=body["deviceId"].encode()))
    [line] = json_lines()
    assert line["message"] == "event consumed"
    assert (line["topic"], line["partition"], line["offset"]) == (TOPIC, 2, 41)
    assert line["key"] == body["deviceId"]
    assert line["event"]["deviceId"] == body["deviceId"]
    assert line["event"]["heartRates"][0]["value"] == body["heartRates"][0]["value"]


@pytest.mark.parametrize(
    "value",
    [b"not json", orjson.dumps({"deviceId": "x"}), None],
    ids=["not-json", "wrong-schema", "tombstone"],
)
def test_an_undecodable_record_is_logged_as_an_error_with_its_coordinates(
    json_lines: Any, value: bytes | None
) -> None:
    log_record(_record(1, 7, value))
    [line] = json_lines()
    assert line["level"] == "error"
    assert (line["topic"], line["partition"], line["offset"]) == (TOPIC, 1, 7)
    assert line["error"]
