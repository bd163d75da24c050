"""Structured logging: one JSON object per line on stdout, where container logs are read."""

from __future__ import annotations

import atexit
import copy
import logging
import queue
import sys
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

import orjson

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


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


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _RESERVED}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exception"] = record.exc_text
        line = json_line(
            record.created, record.levelname.lower(), record.name, record.getMessage(), **fields
        )
        return line[:-1].decode()


class _KeepTracebackQueueHandler(QueueHandler):
    """Hand records to the writer thread with their traceback as text, and their fields intact."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        prepared = copy.copy(record)
        prepared.msg, prepared.args, prepared.exc_info = record.getMessage(), None, None
        return prepared


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> QueueListener:
    """Send every log record to stdout (or the stream given) as JSON lines.

    Formatting and writing happen on a thread of their own, so a slow reader of stdout never
    blocks the event loop; stop the returned listener to flush (it is also stopped at exit).
    """
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = QueueListener(records, handler, respect_handler_level=False)
    listener.start()
    atexit.register(_stop, listener)
    root = logging.getLogger()
    root.handlers[:] = [_KeepTracebackQueueHandler(records)]
    root.setLevel(level)
    return listener


def _stop(listener: QueueListener) -> None:
    if listener._thread is not None:  # QueueListener.stop() is not idempotent before 3.12
        listener.stop()
