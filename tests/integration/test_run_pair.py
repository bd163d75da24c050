"""The run command: with no Kafka configured it starts one (and a registry when asked), then the
producer, the consumer and the zone processor, whose zone events show in its output."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from typing import Any

import httpx2 as httpx
import orjson
import pytest

from consumer_service import EVENT_CONSUMED
from devtools.processes import free_ports
from devtools.zone_events import ZONE_EVENT
from shared.kafka.registry import split_frame
from tests.support import ROOT
from tests.support.samples import event_body
from tests.support.settings import clean_env
from tests.support.topics import read_topic


async def _read_until(stream: asyncio.StreamReader, pattern: str, seen: list[str]) -> str:
    """The first line matching pattern; every line read is kept in `seen`."""
    while line := (await stream.readline()).decode():
        seen.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"the stream ended before a line matching {pattern!r}")


async def _json_lines_with(stream: asyncio.StreamReader, messages: set[str]) -> dict[str, Any]:
    """The first JSON line of each of `messages`, by message, in whatever order they come."""
    found: dict[str, Any] = {}
    while missing := messages - found.keys():
        line = await stream.readline()
        if not line:
            raise AssertionError(f"the output ended before a line of each of {sorted(missing)}")
        try:
            fields = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(fields, dict) and fields.get("message") in missing:
            found[fields["message"]] = fields
    return found


async def _drain(stream: asyncio.StreamReader) -> bytes:
    """Read a child's pipe to its end, so that a full pipe never blocks the run; its rest."""
    return await stream.read()


async def test_the_run_command_shows_a_zone_event_and_stops_everything_on_sigint() -> None:
    http_port, consumer_probe, zones_probe = free_ports(3)
    env = clean_env(
        HTTP__PORT=str(http_port),
        CONSUMER__PROBE_PORT=str(consumer_probe),
        ZONES__PROBE_PORT=str(zones_probe),
        SCHEMA_REGISTRY__URL="local",
    )
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
        said: list[str] = []
        async with asyncio.timeout(120):
            kafka_line = await _read_until(process.stderr, r"local Kafka on .* \(pid \d+\)", said)
            await _read_until(process.stderr, r"local Schema Registry at .* \(pid", said)
            await _read_until(process.stderr, r"ready: POST", said)
        drain_stderr = asyncio.create_task(_drain(process.stderr))
        pids = {
            name: int(pid)
            for line in said
            for name, pid in re.findall(r"(\S+) (?:on|at|started) .*\(pid (\d+)\)", line)
        }
        services = {"producer_service", "consumer_service", "zones_service"}
        assert set(pids) == {"Kafka", "Registry", "devtools.zone_events"} | services, said
        bootstrap = re.findall(r"local Kafka on (\S+)", kafka_line)[0]
        # 160 of 190 bpm is 84% of the maximum: Zone4.
        body = event_body(heartRates=[{"dateTime": "2026-11-25T10:41:16+00:00", "value": 160}])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
            response = await client.post("/biometrics", json=body)
        assert response.status_code == 202, response.text
        async with asyncio.timeout(60):
            lines = await _json_lines_with(process.stdout, {EVENT_CONSUMED, ZONE_EVENT})
        drain_stdout = asyncio.create_task(_drain(process.stdout))
        assert lines[EVENT_CONSUMED]["key"] == body["deviceId"]
        zone_line = lines[ZONE_EVENT]
        assert zone_line["key"] == body["deviceId"]
        assert zone_line["event"]["zone"] == "Zone4"
        assert zone_line["event"]["heartRate"] == 160
        [record] = await read_topic(bootstrap, "BiometricsImported", 1)
        assert split_frame(record.value)[0] is not None  # the registry's 5-byte header
        process.send_signal(signal.SIGINT)  # Ctrl-C
        async with asyncio.timeout(60):
            code = await process.wait()
            stdout, stderr = await asyncio.gather(drain_stdout, drain_stderr)
        assert code == 0, (stderr.decode(errors="replace"), stdout[-4000:].decode(errors="replace"))
        for pid in pids.values():  # nothing may outlive the run command
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if process.returncode is None:  # failed: the run command still stops what it started
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(60):
                    await process.wait()
            except TimeoutError:
                process.kill()
