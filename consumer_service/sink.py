"""Where handled events go: JSON lines on stdout, out before their offsets are committed."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import BinaryIO, Protocol


class Sink(Protocol):
    """Takes a batch of finished lines; raises if they could not all be written.

    It is called on a worker thread, so it may block.
    """

    def write_lines(self, lines: Sequence[bytes]) -> None: ...


class StreamSink:
    """Write lines to a binary stream (stdout by default) and flush it."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """One write and one flush for the whole batch."""
        self._stream.write(b"".join(lines))
        self._stream.flush()
