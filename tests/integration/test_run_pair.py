"""The README's run command: with no Kafka configured it starts one, then both services."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import httpx2 as httpx
import orjson
import pytest

from consumer_service import EVENT_CONSUMED
from devtools.processes import free_port
from shared.registry import split_frame
from tests.support import ROOT
from tests.support.samples import event_body
from tests.support.settings import clean_env
from tests.support.topics import read_topic


async def _read_until(stream: asyncio.StreamReader, pattern: str) -> str:
    while line := (await stream.readline()).decode():
        if re.search(pattern, line):
            return line
    raise AssertionError(f"the stream ended before a line matching {pattern!r}")


async def test_the_run_command_starts_kafka_a_registry_and_the_pair_and_stops_them_all() -> None:
    port = free_port()
    env = clean_env(HTTP__PORT=str(port), SCHEMA_REGISTRY__URL="local")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devtools.run_pair",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(120):
            kafka_line = await _read_until(process.stderr, r"local Kafka on .* \(pid \d+\)")
            registry_line = await _read_until(process.stderr, r"local Schema Registry at .* \(pid")
            await _read_until(process.stderr, r"ready: POST")
        kafka_pid = int(re.findall(r"pid (\d+)", kafka_line)[0])
        registry_pid = int(re.findall(r"pid (\d+)", registry_line)[0])
        bootstrap = re.findall(r"local Kafka on (\S+)", kafka_line)[0]
        body = event_body()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.post("/biometrics", json=body)
        assert response.status_code == 202, response.text
        async with asyncio.timeout(10):
            line = await _read_until(process.stdout, EVENT_CONSUMED)
        assert orjson.loads(line)["key"] == body["deviceId"]
        [record] = await read_topic(bootstrap, "BiometricsImported", 1)
        assert split_frame(record.value)[0] is not None  # the registry's 5-byte header
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await process.wait() == 0
        for pid in (kafka_pid, registry_pid):  # neither may outlive the run command
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
