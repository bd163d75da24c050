"""The consumer's minimum: a bare getmany loop that does only what the job requires of each
record, as the reference the consumer service is held to.

Per batch it decodes each record value with orjson, writes one JSON line per record (topic,
partition, offset, key and the decoded event) to a file with one write and one flush, and then
commits the batch's offsets (last offset + 1 per partition); auto-commit is off. No validation,
metrics, probes, dead letters or worker thread.

`python -m bench.minimal_consumer --sink FILE --expect N [--min-seconds S]`, configured by the
BIOMETRICS_* variables; it drains the topic like bench.bare_consumer and hands back
{"records", "seconds", "passes", "lines"}.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import orjson
from aiokafka import AIOKafkaConsumer

from bench.bare_consumer import Batch, drain_parser, run_drain
from bench.handoff import emit
from shared.startup import start_service


class MinimalJob:
    """Handles a batch: its lines written and flushed to the sink, then its offsets committed."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.lines = 0

    async def __call__(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        lines = [
            orjson.dumps(
                {
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "key": None if record.key is None else record.key.decode(errors="replace"),
                    "event": orjson.loads(record.value),
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for records in batch.values()
            for record in records
        ]
        self._sink.write(b"".join(lines))
        self._sink.flush()
        self.lines += len(lines)
        await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})


def main(argv: list[str] | None = None) -> None:
    """Drain the topic into the sink, then hand back the count, the time and the lines written."""
    parser = drain_parser("python -m bench.minimal_consumer")
    parser.add_argument("--sink", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = start_service("bench-minimal-consumer")
    with args.sink.open("wb") as sink:
        job = MinimalJob(sink)
        result = run_drain(settings, args, job)
    emit({**result, "lines": job.lines})


if __name__ == "__main__":
    main()
