"""The stdout contract: every line on stdout is one whole JSON object, log line or event line.

Two threads write the consumer's stdout: the log writer thread of shared.runtime.logs and the worker
thread that runs StreamSink.write_lines. CPython alone keeps their lines apart only while stdout is
buffered:

- Buffered (the default), `sys.stdout.buffer` is a BufferedWriter. Its `write` (CPython's
  Modules/_io/bufferedio.c, `_io_BufferedWriter_write_impl`) takes the object's lock before it
  looks at the buffer and releases it only on return: data that does not fit is written out,
  in as many raw writes as the pipe takes, under that lock; `flush` takes the same lock. The
  TextIOWrapper over it (textio.c) encodes each `write`'s text whole and hands it to one
  `buffer.write` call. Whole lines in, whole lines out.
- Unbuffered (PYTHONUNBUFFERED=1, as the Dockerfile sets), `sys.stdout.buffer` is the raw FileIO
  itself (Python/pylifecycle.c, `create_stdio`: buffering 0, the text layer write-through). It
  has no lock: each `write` is one write(2), and two threads' writes of more than PIPE_BUF bytes
  (4096 on Linux) to one pipe may interleave (pipe(7)); a blocked write that a signal
  interrupts returns with part of its bytes written (write(2)). Written so, a log line lands
  inside a batch of event lines within a run of the test below.

So both go through shared.runtime.logs.LineOutput: one lock per stream, every byte of one write out
and flushed before the next. The test runs tests/support/stdout_writers.py with its stdout a real
pipe, buffered and unbuffered: threads, asyncio tasks and the consumer's sink write at once,
log lines longer than the 8 KiB buffer and batches larger than the 64 KiB pipe among them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict

import orjson
import pytest

from consumer_service import EVENT_CONSUMED
from tests.support import ROOT
from tests.support.stdout_writers import (
    EVENTS,
    LOG_LINES,
    LONG_EVERY,
    SINK,
    TASKS,
    THREADS,
    event_batches,
)

_BUFFER = 8 * 1024
_PIPE = 64 * 1024


def _shown(line: bytes) -> str:
    """A line short enough to read in a failure: its start and its end."""
    return repr(line) if len(line) <= 400 else f"{line[:200]!r} ... {line[-200:]!r}"


def _environment(unbuffered: bool) -> dict[str, str]:
    """This environment, with stdout unbuffered (PYTHONUNBUFFERED=1, as the image runs) or not."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    return {**env, "PYTHONUNBUFFERED": "1"} if unbuffered else env


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_every_stdout_line_is_whole_json_while_logs_and_events_are_written_at_once(
    unbuffered: bool,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.stdout_writers"],
        cwd=ROOT, env=_environment(unbuffered), capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    assert done.stdout.endswith(b"\n"), _shown(done.stdout[-400:])
    logs: dict[str, list[int]] = defaultdict(list)
    events: list[tuple[int, int]] = []  # (sequence number, bytes) of each event line
    long_logs, broken = 0, []
    for number, line in enumerate(done.stdout[:-1].split(b"\n"), start=1):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            broken.append(f"line {number} is not JSON: {_shown(line)}")
            continue
        if not isinstance(entry, dict):
            broken.append(f"line {number} is no JSON object: {_shown(line)}")
        elif entry.get("message") == EVENT_CONSUMED and entry.get("key") == SINK:
            events.append((entry["offset"], len(line) + 1))
        elif entry.get("writer") in THREADS + TASKS:
            logs[entry["writer"]].append(entry["seq"])
            long_logs += len(line) > _BUFFER
        else:
            broken.append(f"line {number} is no writer's: {_shown(line)}")
    assert not broken, f"{len(broken)} lines broken, the first:\n" + "\n".join(broken[:5])
    assert {writer: logs[writer] for writer in THREADS + TASKS} == {
        writer: list(range(LOG_LINES)) for writer in THREADS + TASKS
    }, "each writer's log lines, all of them, in the order logged"
    assert [seq for seq, _ in events] == list(range(EVENTS)), "every event line, in order"
    # The cases the contract is about did occur: lines over the buffer, writes over the pipe.
    assert long_logs == len(THREADS + TASKS) * len(range(0, LOG_LINES, LONG_EVERY))
    sizes = dict(events)
    assert max(sum(sizes[seq] for seq in batch) for batch in event_batches()) > _PIPE
