"""Logging through the standard machinery: one JSON object per line, or readable console lines.

configure_logging puts a QueueHandler on the root logger. It formats each record on the caller's
thread (its arguments and exception as they were when logged) and queues the line without
blocking; a QueueListener thread writes the lines to stdout, so a slow reader of stdout never
blocks the event loop. At exit the listener writes every queued line before it stops.

A text stream over a binary one (stdout) is written through a LineOutput of the binary stream,
like the consumer's event lines: every LineOutput of a stream takes its turn on one lock and
writes all of its bytes before the next, so a log line never lands inside another writer's line,
however long the lines and whether or not stdout is buffered (PYTHONUNBUFFERED makes
`sys.stdout.buffer` the raw file, whose writes to a pipe interleave and may be partial).

"auto" chooses the format by the stream: readable coloured lines on a terminal, for a person;
JSON lines anywhere else (containers, pipes, files), for machines. A hot path that logs every
request hands its lines over in batches (`log_batch`): one record, one wake-up of the writer
thread, for many lines.
"""

from __future__ import annotations

import atexit
import logging
import queue
import re
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any, BinaryIO, Literal, TextIO

import orjson

__all__ = [
    "BatchEntry",
    "LineOutput",
    "LogFormat",
    "LogWriter",
    "configure_logging",
    "json_line_head",
    "log_batch",
    "takes_batches",
]

LogFormat = Literal["auto", "json", "console"]
# (time.time() of the line, its own fields) for each line of a batch record.
BatchEntry = tuple[float, dict[str, Any]]

_ENTRIES = "log_batch_entries"
# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field,
# except uvicorn's color_message, a copy of the message with terminal colours in it.
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {
    "message", "asctime", "taskName", "color_message", _ENTRIES,
}  # fmt: skip
_BARE = re.compile(r'[^\s="]+')
_LEVEL_COLOURS = {"DEBUG": "34", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


def _utc_iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="microseconds")


def json_line_head(created: float, level: str, logger: str, message: str, **fields: Any) -> bytes:
    """The start of a JSON log line, up to its closing brace, for callers that append fields."""
    entry = {"time": _utc_iso(created), "level": level, "logger": logger, "message": message}
    return orjson.dumps({**entry, **fields}, default=str)[:-1]


class _LineFormatter(logging.Formatter):
    """A record as one line (a batch record as one line per entry), without the last newline."""

    def format(self, record: logging.LogRecord) -> str:
        entries: Sequence[BatchEntry] | None = getattr(record, _ENTRIES, None)
        if entries is None:
            fields = {k: v for k, v in vars(record).items() if k not in _RESERVED}
            if record.exc_info and not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            if record.exc_text:
                fields["exception"] = record.exc_text
            entries = [(record.created, fields)]
        return self.lines(record, entries)

    def lines(self, record: logging.LogRecord, entries: Sequence[BatchEntry]) -> str:
        """One line per entry: the record's level, logger and message, the entry's time, fields."""
        raise NotImplementedError


class JsonFormatter(_LineFormatter):
    """One JSON object: time, level, logger, message, the `extra` fields, exception."""

    def lines(self, record: logging.LogRecord, entries: Sequence[BatchEntry]) -> str:
        level, logger, message = record.levelname.lower(), record.name, record.getMessage()
        out = []
        second, day_and_time = -1, ""  # made once a second of the batch, not once a line
        for created, fields in entries:
            if int(created) != second:
                second = int(created)
                day_and_time = _utc_iso(second)[:19]
            stamp = f"{day_and_time}.{int((created - second) * 1_000_000):06d}+00:00"
            entry = {"time": stamp, "level": level, "logger": logger, "message": message}
            entry.update(fields)
            # Decoded at once: keeping a batch of orjson's bytes alive costs more per line.
            out.append(orjson.dumps(entry, default=str).decode())
        return "\n".join(out)


class ConsoleFormatter(_LineFormatter):
    """`12:04:05.678 INFO    logger  message  key=value`, in colour for a terminal."""

    def __init__(self, colour: bool) -> None:
        super().__init__()
        self._colour = colour

    def lines(self, record: logging.LogRecord, entries: Sequence[BatchEntry]) -> str:
        level = self._paint(_LEVEL_COLOURS.get(record.levelname, "0"), f"{record.levelname:<8}")
        head = f"{level} {self._paint('36', record.name)}  {_printable(record.getMessage())}"
        return "\n".join(self._line(head, created, fields) for created, fields in entries)

    def _line(self, head: str, created: float, fields: dict[str, Any]) -> str:
        stamp = (
            time.strftime("%H:%M:%S", time.localtime(created)) + f".{int(created % 1 * 1000):03d}"
        )
        pairs = "".join(
            f" {self._paint('2', f'{key}=')}{_value(value)}"
            for key, value in fields.items()
            if key != "exception"
        )
        line = f"{self._paint('2', stamp)} {head}" + (f" {pairs}" if pairs else "")
        exception = fields.get("exception")
        return line if exception is None else f"{line}\n{self._paint('31', str(exception))}"

    def _paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self._colour else text


def _printable(text: str) -> str:
    """The text, with control characters (a terminal's escapes among them) escaped."""
    return text if text.isprintable() else orjson.dumps(text).decode()[1:-1]


def _value(value: Any) -> str:
    """A field's value as is when it reads unambiguously so, else as JSON."""
    if isinstance(value, str) and _BARE.fullmatch(value) and value.isprintable():
        return value
    return orjson.dumps(value, default=str).decode()


class _LineQueueHandler(QueueHandler):
    """Formats on the caller's thread and queues the line; the mark of configure_logging."""

    writer: LogWriter | None = None


# Each binary stream's lock, shared by every LineOutput of it; an entry goes with its stream.
_STREAM_LOCKS: weakref.WeakKeyDictionary[BinaryIO, threading.Lock] = weakref.WeakKeyDictionary()
_STREAM_LOCKS_GUARD = threading.Lock()


class LineOutput:
    """Whole lines to a binary stream, one write at a time: all of its bytes, then a flush."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        with _STREAM_LOCKS_GUARD:
            self._lock = _STREAM_LOCKS.setdefault(stream, threading.Lock())

    def write(self, lines: bytes) -> None:
        """Write `lines` (ending in a newline) before any other LineOutput of the stream writes."""
        with self._lock:
            rest = memoryview(lines)
            while rest:
                # A raw stream (stdout under PYTHONUNBUFFERED) may take a part only.
                rest = rest[self._stream.write(rest) :]
            self._stream.flush()


class _OutputHandler(logging.StreamHandler[TextIO]):
    """Writes lines to the stream, through its binary stream's LineOutput when it has one; once
    the stream is gone there is no one left to tell."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        binary: BinaryIO | None = getattr(stream, "buffer", None)
        self._output = None if binary is None else LineOutput(binary)

    def emit(self, record: logging.LogRecord) -> None:
        if self._output is None:
            super().emit(record)
            return
        try:
            text = self.format(record) + self.terminator
            self._output.write(text.encode(self.stream.encoding, self.stream.errors or "strict"))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        gone = isinstance(error, OSError | ValueError) and not isinstance(error, UnicodeError)
        if not gone:
            super().handleError(record)


class LogWriter(QueueListener):
    """The thread that writes the queued lines: `stop` writes every queued line first."""

    def __init__(self, handler: _LineQueueHandler, stream: TextIO) -> None:
        super().__init__(handler.queue, _OutputHandler(stream))
        self._handler = handler
        self._stream = stream

    def stop(self) -> None:
        """Write what is queued and end the thread; later lines are written directly. Idempotent."""
        if self._thread is None:
            return
        super().stop()
        direct = _OutputHandler(self._stream)
        direct.setFormatter(self._handler.formatter)
        root = logging.getLogger()
        root.handlers = [direct if h is self._handler else h for h in root.handlers]


def configure_logging(
    level: str = "INFO", log_format: LogFormat = "auto", stream: TextIO | None = None
) -> LogWriter:
    """Send every log record to stdout (or the stream given) in the format chosen, via a thread.

    The writer is stopped at exit, so every line is out; stop it earlier to flush sooner.
    """
    output = stream if stream is not None else sys.stdout
    terminal = output.isatty()
    console = log_format == "console" or (log_format == "auto" and terminal)
    handler = _LineQueueHandler(queue.SimpleQueue())
    handler.setFormatter(ConsoleFormatter(colour=terminal) if console else JsonFormatter())
    handler.writer = writer = LogWriter(handler, output)
    writer.start()
    atexit.register(writer.stop)
    root = logging.getLogger()
    for replaced in root.handlers:
        if isinstance(replaced, _LineQueueHandler) and replaced.writer is not None:
            replaced.writer.stop()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return writer


def takes_batches(logger: logging.Logger) -> bool:
    """Whether configure_logging's handler, which takes batches, is the only one logger reaches."""
    found = False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if not isinstance(handler, _LineQueueHandler):
                return False
            found = True
        current = current.parent if current.propagate else None
    return found


def log_batch(
    logger: logging.Logger, level: int, message: str, entries: Sequence[BatchEntry]
) -> None:
    """Log `message` once per entry, with its time and fields: as one record if takes_batches."""
    if not entries or not logger.isEnabledFor(level):
        return
    if takes_batches(logger):
        extra = {_ENTRIES: entries}
        logger.handle(logger.makeRecord(logger.name, level, "", 0, message, (), None, extra=extra))
        return
    for created, fields in entries:
        record = logger.makeRecord(logger.name, level, "", 0, message, (), None, extra=fields)
        record.created, record.msecs = created, created % 1 * 1000
        logger.handle(record)
