"""The services run as real processes (`python -m`, started and stopped by devtools' Processes),
awaited from the test's event loop, their JSON output read as it comes, their probes asked over
HTTP. A test learns what a service did from its probes (/readyz, /metrics), the topics or its
event lines, never from the text of its log messages."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from consumer_service import EVENT_CONSUMED
from devtools.processes import Processes
from tests.support import ROOT
from tests.support.polling import eventually, until_status

# A metric's samples: by name and sorted labels, their values.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# uvicorn's start-up line, which names the port it bound (the tests ask for port 0).
UVICORN_RUNNING = "Uvicorn running on"


class AwaitedProcess:
    """A child process, awaited without blocking the event loop."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        """The process id."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while the process runs."""
        return self._process.poll()

    def send_signal(self, signum: int) -> None:
        """Signal the process unless it has exited."""
        if self._process.poll() is None:
            self._process.send_signal(signum)

    async def wait(self) -> int:
        """Wait for the process to exit; return its exit code."""
        if (code := self._process.poll()) is not None:
            return code
        exited = asyncio.Event()
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(self._process.pid)  # readable once the process has exited
        loop.add_reader(pidfd, exited.set)
        try:
            await exited.wait()
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        return self._process.wait()


class ServiceProcess:
    """A service run as a real process; its stdout JSON lines are read as they come."""

    def __init__(self, process: AwaitedProcess, stdout: asyncio.StreamReader) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.other_output: list[bytes] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(stdout))

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        # Reading all the time keeps a full pipe from ever blocking the service.
        while raw := await stdout.readline():
            try:
                self.lines.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                self.other_output.append(raw)
            self._changed.set()
        self._changed.set()

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """The lines so far for which predicate holds."""
        return [line for line in self.lines if predicate(line)]

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        count: int = 1,
        timeout_s: float = 60,
        awaiting: str | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until `count` lines match; fail, naming what was awaited (`awaiting`, else the
        predicate's name) and the last lines, if the process ends first or at the deadline."""
        what = f"{count} x {awaiting or getattr(predicate, '__qualname__', predicate)}"
        found: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout_s):
                while len(found := self.matching(predicate)) < count:
                    if self._reader.done():
                        raise AssertionError(
                            f"the service ended before {what} (found {len(found)}); "
                            f"{self.last_output()}"
                        )
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"not within {timeout_s:g} s: {what} (found {len(found)}); {self.last_output()}"
            ) from None
        return found

    def last_output(self) -> str:
        """The service's pid, last lines and any output that was not a JSON line, for a failure."""
        other = b"".join(self.other_output[-10:]).decode(errors="replace")
        tail = f"; other output: {other}" if other else ""
        return f"pid {self.process.pid}, last lines: {self.lines[-10:]}{tail}"

    async def url(self) -> str:
        """The base URL of the service's HTTP server (the producer's, or the probes' of the
        consumer and the zone processor), from uvicorn's start-up line: the tests ask for port 0,
        and that line is the one place the bound port is told."""
        [line, *_] = await self.wait_for(_uvicorn_running, awaiting="uvicorn's start-up line")
        match = re.search(r"http://[\d.]+:\d+", line["message"])
        assert match is not None, line
        return match.group()

    async def ready(self, timeout_s: float = 60) -> None:
        """Wait until /readyz answers 200 (a consumer or zone processor: in its group with an
        assignment, see docs/operating.md)."""
        async with httpx.AsyncClient(base_url=await self.url(), timeout=10) as client:
            await until_status(client, "/readyz", 200, timeout_s, self.last_output)

    async def metric(self, name: str) -> float:
        """The sum of the samples named `name` (over their labels) on /metrics now."""
        async with httpx.AsyncClient(base_url=await self.url(), timeout=10) as client:
            samples = metric_samples((await client.get("/metrics")).text)
        return sum(value for (sample, _), value in samples.items() if sample == name)

    async def until_metric(
        self, name: str, at_least: float, at_most: float | None = None, timeout_s: float = 60
    ) -> float:
        """Poll /metrics until `name` (as metric() sums it) is at least `at_least` (and at most
        `at_most`, if given); return it."""
        high = float("inf") if at_most is None else at_most
        bounds = f">= {at_least:g}" if at_most is None else f"in [{at_least:g}, {at_most:g}]"
        return await eventually(
            lambda: self.metric(name),
            lambda value: at_least <= value <= high,
            timeout_s=timeout_s,
            awaiting=f"{name} {bounds}",
            context=self.last_output,
        )

    def events(self) -> list[dict[str, Any]]:
        """The consumer's event lines so far."""
        return self.matching(lambda line: line["message"] == EVENT_CONSUMED)

    async def finish(self, signum: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        """Send the signal, wait for the exit code and the last of the output."""
        self.process.send_signal(signum)
        async with asyncio.timeout(timeout_s):
            code = await self.process.wait()
            await self._reader
        return code


def _uvicorn_running(line: dict[str, Any]) -> bool:
    return line["logger"] == "uvicorn.error" and UVICORN_RUNNING in line["message"]


def metric_samples(text: str) -> Samples:
    """The samples of a /metrics answer (Prometheus text format)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@asynccontextmanager
async def service_process(module: str, env: dict[str, str]) -> AsyncIterator[ServiceProcess]:
    """Start `python -m module` with exactly env; kill it on exit if the test has not stopped it."""
    with Processes(cwd=ROOT) as processes:
        process = processes.start(
            [sys.executable, "-m", module],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        stdout = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stdout), process.stdout
        )
        service = ServiceProcess(AwaitedProcess(process), stdout)
        try:
            yield service
        finally:
            processes.stop_all(signal.SIGKILL)
            await service._reader


async def through_the_pair(
    env: dict[str, str], bodies: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], ServiceProcess, ServiceProcess]:
    """Run both services as processes, POST each body (each must get 202), wait for the consumer's
    line of every one, then SIGTERM both (each must exit 0); return those lines and the two
    processes, whose output stays readable."""
    async with (
        service_process("producer_service", env) as producer,
        service_process("consumer_service", env) as consumer,
    ):
        url = await producer.url()
        await consumer.ready()
        async with httpx.AsyncClient(base_url=url) as client:
            for body in bodies:
                response = await client.post("/biometrics", json=body)
                assert response.status_code == 202, response.text
        events = await consumer.wait_for(
            lambda line: line["message"] == EVENT_CONSUMED, len(bodies)
        )
        codes = await asyncio.gather(producer.finish(), consumer.finish())
    assert codes == [0, 0], (producer.lines[-5:], consumer.lines[-5:])
    return events, producer, consumer
