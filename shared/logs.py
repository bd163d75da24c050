"""Structured logging: one JSON object per line on stdout, where container logs are read."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
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
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        line = json_line(
            record.created, record.levelname.lower(), record.name, record.getMessage(), **fields
        )
        return line[:-1].decode()


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every log record to stdout (or the stream given) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
