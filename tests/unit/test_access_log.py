"""The access log's template lines have the shape of every other log line."""

from __future__ import annotations

import io
import logging

import orjson

from producer_service.access_log import LOGGER, AccessLog
from shared.logs import configure_logging


async def test_request_lines_are_json_with_the_fields_of_a_log_line() -> None:
    stream = io.BytesIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    writer = configure_logging("INFO", stream)
    try:
        log = AccessLog()
        log.request(1_700_000_000.25, "abc123", "POST", '/bio"metrics', 202, 1.23456)
        log.request(1_700_000_001.5, "abc124", "GET", "/metrics", 200, 0.5)
        log.flush()
        writer.close()
    finally:
        root.handlers[:], root.level = handlers, level
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first == {
        "time": "2023-11-14T22:13:20.250000+00:00",
        "level": "info",
        "logger": LOGGER,
        "message": "request",
        "request_id": "abc123",
        "method": "POST",
        "path": '/bio"metrics',
        "status": 202,
        "duration_ms": 1.235,
    }
    assert second["time"] == "2023-11-14T22:13:21.500000+00:00"
    assert second["status"] == 200
