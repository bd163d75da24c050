"""Helpers for the broker tests: settings for a fresh topic, an in-process producer server,
an independent reader of the topic and a consumer whose log lines can be awaited."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
import orjson
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from opentelemetry.sdk.trace import TracerProvider

from consumer_service import CONSUMER_STARTED, EVENT_CONSUMED, run_consumer
from producer_service import create_app
from producer_service.app import PublisherFactory
from shared.settings import Settings, load_settings
from tests.support.samples import ROOT, clean_env

RawRecord = tuple[bytes | None, bytes | None]

# uvicorn's start-up line, which names the port it bound (the tests ask for port 0).
UVICORN_RUNNING = "Uvicorn running on"


def settings_for(bootstrap: str, topic: str, group_id: str, partitions: int = 3) -> Settings:
    """The project's settings, pointed at the test broker, topic and group."""
    settings = load_settings(ROOT, env={})
    kafka = settings.kafka.model_copy(
        update={
            "bootstrap_servers": bootstrap,
            "topic": topic,
            "dead_letter_topic": f"{topic}.DLQ",
            "topic_partitions": partitions,
        }
    )
    consumer = settings.consumer.model_copy(
        update={"group_id": group_id, "poll_timeout_ms": 200, "probe_port": 0}
    )
    return settings.model_copy(update={"kafka": kafka, "consumer": consumer})


class _Server(uvicorn.Server):
    """uvicorn's server, with an event set once start-up has finished (or failed)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: Any = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


@asynccontextmanager
async def serving_producer(
    settings: Settings,
    publisher_factory: PublisherFactory | None = None,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[tuple[str, _Server]]:
    """Serve the producer app on a free port in this loop; yield its URL and the server."""
    config = uvicorn.Config(
        create_app(settings, publisher_factory, tracer_provider=tracer_provider),
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        await server.ready.wait()
    if not server.started:
        # uvicorn ends a failed start-up with SystemExit(3); the reason is in the log.
        with contextlib.suppress(SystemExit):
            await task
        raise RuntimeError("the producer did not start; see the log")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await task


async def read_topic(
    bootstrap: str, topic: str, count: int, timeout_s: float = 30
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read the first `count` records of every partition with a fresh, group-less consumer."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for partition_records in batch.values():
                    records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def committed_offsets(bootstrap: str, group_id: str) -> dict[int, int]:
    """The group's committed offset per partition, as the broker reports it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        async with asyncio.timeout(30):
            while True:
                try:
                    offsets = await admin.list_consumer_group_offsets(group_id)
                    break
                except GroupCoordinatorNotAvailableError:
                    # A fresh broker creates __consumer_offsets on first use; ask again.
                    await asyncio.sleep(0.2)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


class LineCollector:
    """A consumer sink that keeps each line it is given and lets a test await them."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def write_lines(self, lines: Sequence[bytes]) -> None:
        # Called on a worker thread: hand the lines to the test's event loop.
        self._loop.call_soon_threadsafe(self._add, lines)

    def _add(self, lines: Sequence[bytes]) -> None:
        self.lines.extend(orjson.loads(line) for line in lines)
        self._changed.set()

    def events(self) -> list[dict[str, Any]]:
        """The consumed-event lines so far."""
        return [line for line in self.lines if line["message"] == EVENT_CONSUMED]

    async def wait_for_events(self, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Wait until at least `count` event lines have been written."""
        async with asyncio.timeout(timeout_s):
            while len(self.events()) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events()


@asynccontextmanager
async def running_consumer(settings: Settings) -> AsyncIterator[LineCollector]:
    """Run consumer_service's loop in this event loop; stop it (as SIGTERM would) on exit."""
    collector = LineCollector()
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, stop, sink=collector))
    try:
        yield collector
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task


class ServiceProcess:
    """A service run as a real process; its stdout JSON lines are read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.other_output: list[bytes] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        # Reading all the time keeps a full pipe from ever blocking the service.
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
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
        self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, timeout_s: float = 60
    ) -> list[dict[str, Any]]:
        """Wait until `count` lines match; fail if the process ends first."""
        async with asyncio.timeout(timeout_s):
            while len(found := self.matching(predicate)) < count:
                if self._reader.done():
                    raise AssertionError(
                        f"the service ended; last lines: {self.lines[-10:]} {self.other_output}"
                    )
                self._changed.clear()
                await self._changed.wait()
        return found

    async def wait_for_message(self, message: str, timeout_s: float = 60) -> dict[str, Any]:
        """Wait for the first line whose message contains `message`."""
        [line, *_] = await self.wait_for(lambda line: message in line["message"], 1, timeout_s)
        return line

    async def url(self) -> str:
        """The producer's base URL, from uvicorn's start-up line."""
        line = await self.wait_for_message(UVICORN_RUNNING)
        match = re.search(r"http://[\d.]+:\d+", line["message"])
        assert match is not None, line
        return match.group()

    def events(self) -> list[dict[str, Any]]:
        """The consumer's event lines so far."""
        return self.matching(lambda line: line["message"] == EVENT_CONSUMED)

    async def finish(self, signum: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        """Send the signal, wait for the exit code and the last of the output."""
        if self.process.returncode is None:
            self.process.send_signal(signum)
        async with asyncio.timeout(timeout_s):
            code = await self.process.wait()
            await self._reader
        return code


def service_env(bootstrap: str, topic: str, group_id: str, **settings: str) -> dict[str, str]:
    """The environment of a service process: this one's, pointed at the test broker and topic."""
    env = clean_env(
        **{
            "BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "BIOMETRICS_KAFKA__TOPIC": topic,
            "BIOMETRICS_KAFKA__DEAD_LETTER_TOPIC": f"{topic}.DLQ",
            "BIOMETRICS_CONSUMER__GROUP_ID": group_id,
            "BIOMETRICS_HTTP__PORT": "0",
            "BIOMETRICS_CONSUMER__PROBE_PORT": "0",
        }
    )
    env |= {f"BIOMETRICS_{key.upper()}": value for key, value in settings.items()}
    return env


@asynccontextmanager
async def service_process(module: str, env: dict[str, str]) -> AsyncIterator[ServiceProcess]:
    """Start `python -m module`; kill it on exit if the test has not stopped it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    service = ServiceProcess(process)
    try:
        yield service
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await service._reader


async def fill_topic(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> None:
    """Write raw (key, value) records straight into the topic, as any other client could."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


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
        await consumer.wait_for_message(CONSUMER_STARTED)
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
