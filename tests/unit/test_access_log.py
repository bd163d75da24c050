"""The access log's lines have the shape of every other log line, and reach the queue in batches."""

from __future__ import annotations

import io
import logging

import orjson

from producer_service.access_log import LOGGER, AccessLog
from tests.support.logs import logging_to


async def test_request_lines_are_json_with_the_fields_of_a_log_line() -> None:
    stream = io.StringIO()
    with logging_to(stream):
        log = AccessLog()
        log.request(1_700_000_000.25, "abc123", "POST", '/bio"metrics', 202, 1.23456)
        log.request(1_700_000_001.5, "abc124", "GET", "/metrics", 200, 0.5)
        log.flush()
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


async def test_the_requests_between_two_flushes_are_queued_as_one_record() -> None:
    stream = io.StringIO()
    with logging_to(stream):
        queued: list[logging.LogRecord] = []
        [handler] = logging.getLogger().handlers
        handler.addFilter(lambda record: queued.append(record) is None)
        log = AccessLog()
        for n in range(100):
            log.request(1_700_000_000 + n / 100, f"id{n}", "GET", "/healthz", 200, 0.1)
        assert queued == []
        log.flush()
        assert len(queued) == 1
    assert [orjson.loads(line)["request_id"] for line in stream.getvalue().splitlines()] == [
        f"id{n}" for n in range(100)
    ]


async def test_in_console_mode_each_request_is_a_readable_line() -> None:
    stream = io.StringIO()
    with logging_to(stream, "console"):
        log = AccessLog()
        log.request(1_700_000_000.25, "abc123", "POST", "/biometrics", 202, 1.23456)
        log.request(1_700_000_001.5, "abc124", "GET", "/metrics", 200, 0.5)
        log.flush()
    first, second = stream.getvalue().splitlines()
    assert first.endswith(
        f"INFO     {LOGGER}  request  request_id=abc123 method=POST path=/biometrics status=202"
        " duration_ms=1.235"
    )
    assert "request_id=abc124" in second
