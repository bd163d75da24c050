"""Log lines: JSON for machines, readable console lines on a terminal, all written at exit."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import select
import subprocess
import sys
import threading
from typing import Any

import orjson
import pytest
import uvicorn
from aiokafka import TopicPartition

from consumer_service import EVENT_CONSUMED, RecordProcessor, StreamSink
from shared.runtime.settings import SettingsError, load_settings
from tests.support import ROOT
from tests.support.fakes import RecordingDeadLetters
from tests.support.logs import logging_to
from tests.support.polling import eventually
from tests.support.samples import TOPIC, event_body, record
from tests.support.settings import clean_env


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_a_json_line_has_time_level_logger_message_and_the_extra_fields() -> None:
    stream = io.StringIO()
    with logging_to(stream):
        logging.getLogger("tests.logs").warning("%d records late", 3, extra={"topic": "t", "n": 1})
    [line] = _json_lines(stream.getvalue())
    assert list(line) == ["time", "level", "logger", "message", "topic", "n"]
    assert (line["level"], line["logger"]) == ("warning", "tests.logs")
    assert line["message"] == "3 records late"
    assert (line["topic"], line["n"]) == ("t", 1)
    assert line["time"].endswith("+00:00")


def test_an_exception_is_one_field_with_its_traceback() -> None:
    stream = io.StringIO()
    with logging_to(stream):
        try:
            raise ValueError("bad value")
        except ValueError:
            logging.getLogger("tests.logs").exception("it failed", extra={"step": 2})
    [line] = _json_lines(stream.getvalue())
    assert (line["message"], line["step"]) == ("it failed", 2)
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("ValueError: bad value")


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("no request is sent")


async def test_uvicorns_lines_carry_no_color_message() -> None:
    stream = io.StringIO()
    with logging_to(stream):
        config = uvicorn.Config(_answer, host="127.0.0.1", port=0, lifespan="off", log_config=None)
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        # uvicorn offers no event to wait on.
        await eventually(
            lambda: server.started, timeout_s=10, interval_s=0.01, awaiting="uvicorn started"
        )
        server.should_exit = True
        await serving
    lines = _json_lines(stream.getvalue())
    assert any(line["message"].startswith("Uvicorn running on") for line in lines)
    assert [line for line in lines if "color_message" in line] == []
    assert "\x1b" not in stream.getvalue() and "\\u001b" not in stream.getvalue()


def test_auto_writes_console_lines_on_a_terminal() -> None:
    controller, terminal_fd = os.openpty()
    try:
        with open(terminal_fd, "w", encoding="utf-8") as terminal:
            with logging_to(terminal, "auto"):
                logging.getLogger("tests.logs").info("hello there", extra={"status": 202})
            text = _read_available(controller)
    finally:
        os.close(controller)
    assert "\x1b[32mINFO" in text  # the level, in green
    assert "hello there" in text and "status=\x1b[0m202" in text
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)


def test_auto_writes_json_lines_on_a_pipe() -> None:
    reader_fd, writer_fd = os.pipe()
    with open(reader_fd, encoding="utf-8") as reader:
        with open(writer_fd, "w", encoding="utf-8") as pipe, logging_to(pipe, "auto"):
            logging.getLogger("tests.logs").info("hello there", extra={"status": 202})
        [line] = _json_lines(reader.read())
    assert (line["message"], line["status"]) == ("hello there", 202)


def test_a_console_line_escapes_terminal_control_characters() -> None:
    stream = io.StringIO()
    with logging_to(stream, "console"):
        logging.getLogger("tests.logs").info("asked for", extra={"path": "/a\x1b[2Jb c"})
    [line] = stream.getvalue().splitlines()
    assert "\x1b" not in line  # not a terminal: no colours either
    assert line.endswith(' INFO     tests.logs  asked for  path="/a\\u001b[2Jb c"')


def test_the_format_setting_defaults_to_auto_and_refuses_unknown_formats() -> None:
    assert load_settings(ROOT, env={}).logging.format == "auto"
    console = {"BIOMETRICS_LOGGING__FORMAT": "console"}
    assert load_settings(ROOT, env=console).logging.format == "console"
    with pytest.raises(SettingsError, match=r"logging\.format"):
        load_settings(ROOT, env={"BIOMETRICS_LOGGING__FORMAT": "xml"})


_SERVICE_START = """
import logging
from shared.runtime.lifecycle import start_service
start_service("test")
logging.getLogger("tests.logs").info("started", extra={"n": 1})
"""


@pytest.mark.parametrize(("log_format", "console"), [("auto", True), ("json", False)])
def test_a_service_on_a_terminal_logs_as_its_format_setting_says(
    log_format: str, console: bool
) -> None:
    env = clean_env(
        KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9",
        LOGGING__FORMAT=log_format,
    )
    controller, terminal_fd = os.openpty()
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _SERVICE_START],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=terminal_fd,
        )  # fmt: skip
        os.close(terminal_fd)
        output = _read_until_closed(controller)
        assert child.wait(timeout=30) == 0
    finally:
        os.close(controller)
    [line] = output.splitlines()
    if console:
        assert "\x1b[32mINFO" in line and "started" in line
    else:
        assert orjson.loads(line)["message"] == "started"


_LOG_THEN_EXIT = """
import logging, sys
from shared.runtime.logs import configure_logging, log_batch
configure_logging("INFO", "json")
log = logging.getLogger("tests.exit")
for n in range(20_000):
    log.info("line", extra={"n": n})
log_batch(log, logging.INFO, "batched", [(0.0, {"n": n}) for n in range(20_000, 20_500)])
sys.exit(0)
"""


def test_lines_queued_right_before_exit_are_all_written() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LOG_THEN_EXIT], cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    numbers = [line["n"] for line in _json_lines(done.stdout.decode())]
    assert numbers == list(range(20_500))


class _GatedStream(io.StringIO):
    """A reader that takes nothing until `gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, text: str) -> int:
        self.gate.wait(timeout=5)
        return super().write(text)


def test_a_slow_reader_of_the_stream_does_not_block_the_caller() -> None:
    stream = _GatedStream()
    with logging_to(stream):
        for n in range(3):
            logging.getLogger("tests.logs").info("line", extra={"n": n})
        assert stream.getvalue() == ""  # the caller got here with the writer still waiting
        stream.gate.set()
    assert [line["n"] for line in _json_lines(stream.getvalue())] == [0, 1, 2]


async def test_consumed_event_lines_stay_json_in_console_mode() -> None:
    out = io.BytesIO()
    with logging_to(io.TextIOWrapper(out, write_through=True), "console"):
        processor = RecordProcessor(
            StreamSink(out), RecordingDeadLetters(), max_record_bytes=4096, retries=0,
            retry_backoff_s=0,
        )  # fmt: skip
        body = event_body()
        valid = record(0, 1, orjson.dumps(body), key=body["deviceId"].encode())
        await processor.process(TopicPartition(TOPIC, 0), [record(0, 0, b"not json"), valid])
        await processor.flush()
    events, logs = [], []
    for line in out.getvalue().decode().splitlines():
        (events if line.startswith("{") else logs).append(line)
    [event] = [orjson.loads(line) for line in events]
    assert (event["message"], event["offset"], event["event"]) == (EVENT_CONSUMED, 1, body)
    [set_aside] = logs
    assert " ERROR    consumer_service" in set_aside and "record set aside" in set_aside


def _read_available(fd: int) -> str:
    """What a terminal's controller can read now, carriage returns dropped."""
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode().replace("\r\n", "\n")


def _read_until_closed(fd: int) -> str:
    """Everything written to a terminal until its last writer closed it."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: no process has the terminal open any more
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode().replace("\r\n", "\n")
