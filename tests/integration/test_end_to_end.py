"""Both services as real processes, as they are deployed: HTTP in, JSON lines out."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
import orjson

from tests.integration.harness import ROOT
from tests.support import event_body

MakeTopic = Callable[..., Awaitable[str]]


class _Service:
    """A service process whose JSON log lines can be awaited."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    async def wait_for_line(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            if not raw:
                raise AssertionError(f"the service exited; it said: {self.lines}")
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise AssertionError(f"not a JSON log line: {raw!r}") from None
            self.lines.append(line)
            if predicate(line):
                return line


@asynccontextmanager
async def _service(module: str, env: dict[str, str]) -> AsyncIterator[_Service]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield _Service(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_posted_events_appear_in_the_consumer_output_and_both_stop_cleanly(
    kafka_bootstrap: str, topic_factory: MakeTopic, group_id: str
) -> None:
    topic = await topic_factory(3)
    env = {
        **os.environ,
        "BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BIOMETRICS_KAFKA__TOPIC": topic,
        "BIOMETRICS_CONSUMER__GROUP_ID": group_id,
        "BIOMETRICS_HTTP__PORT": "0",
    }
    bodies = [event_body() for _ in range(5)]
    async with (
        _service("producer_service", env) as producer,
        _service("consumer_service", env) as consumer,
    ):
        async with asyncio.timeout(60):
            started = await producer.wait_for_line(
                lambda line: "Uvicorn running on" in line["message"]
            )
            await consumer.wait_for_line(lambda line: line["message"] == "consumer started")
        url = re.search(r"http://\S+", started["message"])
        assert url is not None
        async with httpx.AsyncClient(base_url=url.group()) as client:
            for body in bodies:
                response = await client.post("/biometrics", json=body)
                assert response.status_code == 202, response.text
        seen: set[str] = set()
        wanted = {b["deviceId"] for b in bodies}
        async with asyncio.timeout(30):
            while seen != wanted:
                line = await consumer.wait_for_line(
                    lambda line: line["message"] == "event consumed"
                )
                assert line["topic"] == topic
                seen.add(line["event"]["deviceId"])
        for service in (producer, consumer):
            service.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            codes = [await s.process.wait() for s in (producer, consumer)]
    assert codes == [0, 0], (producer.lines[-5:], consumer.lines[-5:])
