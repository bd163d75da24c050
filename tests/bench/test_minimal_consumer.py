"""The minimal consumer loop does the job's minimum: a decoded line per record, then a commit."""

from __future__ import annotations

import io

import orjson
from aiokafka import ConsumerRecord, TopicPartition

from bench.clients import MinimalJob

TOPIC = "biometrics"
_TRACE = [
    ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("x-request-id", b"r-1"),
]


def _record(
    partition: int,
    offset: int,
    key: bytes,
    event: dict[str, object],
    headers: list[tuple[str, bytes]] | None = None,
) -> ConsumerRecord:
    value = orjson.dumps(event)
    return ConsumerRecord(
        TOPIC, partition, offset, 0, 0, key, value, None, len(key), len(value), headers or []
    )


class _RecordingConsumer:
    """Records each commit's offsets and what the sink held when it was made."""

    def __init__(self, sink: io.BytesIO) -> None:
        self._sink = sink
        self.commits: list[tuple[dict[TopicPartition, int], bytes]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append((offsets, self._sink.getvalue()))


async def test_a_batch_is_written_a_line_per_record_before_its_offsets_are_committed() -> None:
    sink = io.BytesIO()
    consumer = _RecordingConsumer(sink)
    job = MinimalJob(sink)
    batch = {
        TopicPartition(TOPIC, 0): [_record(0, 7, b"a", {"n": 1}), _record(0, 8, b"b", {"n": 2})],
        TopicPartition(TOPIC, 3): [_record(3, 41, b"c", {"n": 3}, _TRACE)],
    }

    await job(consumer, batch)  # type: ignore[arg-type]

    [(offsets, written)] = consumer.commits
    assert offsets == {TopicPartition(TOPIC, 0): 9, TopicPartition(TOPIC, 3): 42}
    assert [orjson.loads(line) for line in written.splitlines()] == [
        {"topic": TOPIC, "partition": 0, "offset": 7, "key": "a", "event": {"n": 1}},
        {"topic": TOPIC, "partition": 0, "offset": 8, "key": "b", "event": {"n": 2}},
        {
            **{"topic": TOPIC, "partition": 3, "offset": 41, "key": "c"},
            **{"request_id": "r-1", "traceparent": _TRACE[0][1].decode(), "event": {"n": 3}},
        },
    ]
    assert written.endswith(b"\n")
    assert job.lines == 3
