"""The decode rows: the consumer rows' records decoded strictly (as the HTTP edge does) and
tolerantly (as the readers do), in alternating slices in the bench's own process."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.context import Bench, say
from bench.report import Row
from shared.contracts.schema import parse_event, parse_record

ROWS = {
    "decode_strict": ("decode a record, strict (as the HTTP edge)", parse_event),
    "decode_tolerant": ("decode a record, tolerant (as the consumers)", parse_record),
}
# Each row's share of a round, cut into slices that alternate between the two.
_SLICES = 10


def measure(bench: Bench) -> None:
    """One round of the decode rows, if wanted."""
    wanted = [name for name in ROWS if bench.wants(name)]
    if not wanted:
        return
    values = [line.split(b"\t", 1)[1] for line in bench.files.records.read_bytes().splitlines()]
    say("decode: strict and tolerant, alternating")
    totals = {name: [0, 0.0] for name in wanted}
    slice_s = bench.options.seconds / 2 / _SLICES
    for _ in range(_SLICES):
        for name in wanted:
            decoded, spent = _decode_for(ROWS[name][1], values, slice_s)
            totals[name][0] += decoded
            totals[name][1] += spent
    for name in wanted:
        events, seconds = totals[name]
        bench.report.rows.append(
            Row(name, ROWS[name][0], int(events), seconds, errors=0, cpu={"bench": 100.0})
        )


def _decode_for(
    decode: Callable[[bytes], Any], values: Sequence[bytes], seconds: float
) -> tuple[int, float]:
    """Decode the values in turn for about `seconds`; (values decoded, CPU seconds spent)."""
    decoded, started = 0, time.process_time()
    deadline = started + seconds
    while time.process_time() < deadline:
        for value in values:
            decode(value)
        decoded += len(values)
    return decoded, time.process_time() - started
