"""The services' logging, configured for one test and restored after it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from shared.runtime.logs import LogFormat, LogWriter, configure_logging


@contextmanager
def logging_to(stream: TextIO, log_format: LogFormat = "json") -> Iterator[LogWriter]:
    """configure_logging for one test; the root logger's handlers and level are restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    writer = configure_logging("INFO", log_format, stream)
    try:
        yield writer
    finally:
        writer.stop()
        root.handlers[:], root.level = handlers, level
