"""Structured logging: one JSON object per line on stdout, where container logs are read.

Lines are made on the caller's thread with orjson (cheap) and written by a LineWriter thread
(so a slow reader of stdout never blocks the event loop). Hot paths that log on every request
use `fast_logger`, which skips the logging module's record machinery when the writer is set up.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_BATCH = 512


def json_line(created: float, level: str, logger: str, message: str, **fields: Any) -> bytes:
    """One log line, newline included, in the shape every log line of the project has."""
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(),
        "level": level,
        "logger": logger,
        "message": message,
        **fields,
    }
    return orjson.dumps(entry, default=str, option=orjson.OPT_APPEND_NEWLINE)


def json_line_head(created: float, level: str, logger: str, message: str, **fields: Any) -> bytes:
    """A json_line without its closing brace and newline, for callers that append fields to it."""
    return json_line(created, level, logger, message, **fields)[:-2]


class LineWriter:
    """A thread that writes finished lines to a binary stream, many per write when busy."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def put(self, line: bytes) -> None:
        """Queue one line; never blocks."""
        self._lines.put(line)

    def close(self) -> None:
        """Write what is queued, then stop the thread; safe to call twice."""
        if self._thread.is_alive():
            self._lines.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._lines.get()
            batch = [first]
            while first is not None and len(batch) < _BATCH:
                try:
                    batch.append(self._lines.get_nowait())
                except queue.Empty:
                    break
                if batch[-1] is None:
                    break
            done = batch[-1] is None
            try:
                self._stream.write(b"".join(line for line in batch if line is not None))
                self._stream.flush()
            except (OSError, ValueError):
                pass  # stdout is gone: nothing left to tell it
            if done:
                return


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        return self.format_bytes(record)[:-1].decode()

    def format_bytes(self, record: logging.LogRecord) -> bytes:
        """The line as bytes, newline included."""
        fields = {k: v for k, v in vars(record).items() if k not in _RESERVED}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exception"] = record.exc_text
        return json_line(
            record.created, record.levelname.lower(), record.name, record.getMessage(), **fields
        )


class _LineHandler(logging.Handler):
    """Formats on the caller's thread and hands the line to the writer."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer
        self._formatter = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.put(self._formatter.format_bytes(record))
        except Exception:
            self.handleError(record)


def configure_logging(level: str = "INFO", stream: BinaryIO | None = None) -> LineWriter:
    """Send every log record to stdout (or the stream given) as JSON lines, via a writer thread.

    The writer is closed, so every line is out, at exit; close it earlier to flush sooner.
    """
    writer = LineWriter(stream if stream is not None else sys.stdout.buffer)
    atexit.register(writer.close)
    root = logging.getLogger()
    root.handlers[:] = [_LineHandler(writer)]
    root.setLevel(level)
    return writer


def fast_logger(name: str, level: int = logging.INFO) -> Callable[..., None]:
    """A function `log(message, **fields)` for hot paths.

    With configure_logging in force it builds the line directly (no LogRecord); otherwise, as in
    tests, it goes through the logging module like any other line.
    """
    logger = logging.getLogger(name)
    writer = current_writer()
    if writer is None:
        return lambda message, **fields: logger.log(level, message, extra=fields)
    if not logger.isEnabledFor(level):
        return lambda message, **fields: None
    level_name = logging.getLevelName(level).lower()
    return lambda message, **fields: writer.put(
        json_line(time.time(), level_name, name, message, **fields)
    )


def current_writer() -> LineWriter | None:
    """The writer configure_logging set up for the root logger, if it is in force."""
    return next(
        (h.writer for h in logging.getLogger().handlers if isinstance(h, _LineHandler)), None
    )
