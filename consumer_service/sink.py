"""Where handled events go: one JSON line each on stdout, out before their offset is committed."""

from __future__ import annotations

import sys
from typing import BinaryIO, Protocol


class Sink(Protocol):
    """Takes one finished line; raises if it could not be written."""

    def write(self, line: bytes) -> None: ...


class StreamSink:
    """Write each line to a binary stream (stdout by default) and flush it at once."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer

    def write(self, line: bytes) -> None:
        """Write and flush, so a committed offset never refers to a line still in a buffer."""
        self._stream.write(line)
        self._stream.flush()
