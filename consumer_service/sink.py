"""Where handled events go: JSON lines on stdout, out before their offsets are committed.

The lines go through a LineOutput of the stream (shared.runtime.logs), as the log lines on stdout
do, so no log line lands inside a batch and no batch inside a log line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import BinaryIO, Protocol

from shared.runtime.logs import LineOutput


class Sink(Protocol):
    """Takes a batch of finished lines; raises if they could not all be written.

    It is called on a worker thread, so it may block.
    """

    def write_lines(self, lines: Sequence[bytes]) -> None: ...


class StreamSink:
    """Write lines to a binary stream (stdout by default), every byte, and flush it."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._output = LineOutput(stream if stream is not None else sys.stdout.buffer)

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """One write and one flush for the whole batch, with no other writer's line inside."""
        self._output.write(b"".join(lines))
