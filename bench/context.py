"""Bench, what every row needs; the files of standard events it draws from; logs followed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.clients import receive
from bench.metering import CpuShares, Pinning, cpu_meter, python_module
from bench.options import Options
from bench.report import Report
from consumer_service import EVENT_CONSUMED
from devtools.processes import Processes
from shared.contracts.schema import encode_key, encode_value, parse_event
from shared.kafka.adapter import TopicSpec, committed_offsets, describe_topics
from shared.kafka.topics import create_topics_and_wait
from shared.runtime.settings import Settings

# A fixed, valid device id wrk replaces with a unique one per request (wrk.lua has it too).
PLACEHOLDER_DEVICE_ID = "00000000-0000-4000-8000-000000000000"
# 80 to 188 bpm against a maximum of 190: readings in every zone and below them, so the zone
# processor has events to produce.
STANDARD_HEART_RATES = tuple(80 + 12 * i for i in range(10))

_START = datetime(2026, 11, 25, 10, 41, 16, 123000, tzinfo=UTC)
_DISTINCT_EVENTS = 1000
_DISTINCT_BATCHES = 20


def standard_body(device_id: str, heart_rates: Sequence[int] = STANDARD_HEART_RATES) -> bytes:
    """One event as a tracker posts it: by default 10 heart rates and 10 step counts, about 1 KB."""
    at = [(_START + timedelta(seconds=i)).isoformat(timespec="milliseconds") for i in range(10)]
    event = {
        "deviceId": device_id,
        "heartRates": [{"dateTime": at[i], "value": bpm} for i, bpm in enumerate(heart_rates)],
        "stepCounts": [{"dateTime": at[i], "value": 12 * i} for i in range(len(heart_rates))],
        "maxHeartRate": 190,
    }
    return orjson.dumps(event)


@dataclass(frozen=True)
class Files:
    """The request bodies and records every row draws from."""

    bodies: Path  # one standard event a line, each its own device
    batches: Path  # one JSON array of events a line
    records: Path  # key<TAB>value lines, as the producer service encodes them
    template: Path  # one event whose device id wrk replaces
    zone_template: Path  # one event with a single Zone5 reading, whose device id wrk replaces

    @classmethod
    def write(cls, directory: Path, events_per_batch: int) -> Files:
        """Write the files into directory, each event with a device id of its own."""
        bodies = [standard_body(str(uuid.uuid4())) for _ in range(_DISTINCT_EVENTS)]
        batches = [
            b"[%b]" % b",".join(standard_body(str(uuid.uuid4())) for _ in range(events_per_batch))
            for _ in range(_DISTINCT_BATCHES)
        ]
        # Exactly the records the producer service would send for the bodies.
        records = [encode_key(e) + b"\t" + encode_value(e) for e in map(parse_event, bodies)]
        template = standard_body(PLACEHOLDER_DEVICE_ID)
        zone_template = standard_body(PLACEHOLDER_DEVICE_ID, [180])  # one Zone5 reading
        # In the order of the fields.
        files = {
            "bodies.jsonl": bodies,
            "batches.jsonl": batches,
            "records.tsv": records,
            "template.json": [template],
            "zone-template.json": [zone_template],
        }
        return cls(*(_write_lines(directory / name, lines) for name, lines in files.items()))


@dataclass
class Bench:
    """What every row needs: options, processes, the broker, the files, the report."""

    options: Options
    processes: Processes
    pinning: Pinning
    bootstrap: str
    broker_pid: int | None
    directory: Path
    files: Files
    settings: Settings
    report: Report

    def env(self, topic: str, port: int | None = None, group: str | None = None) -> dict[str, str]:
        """The environment of a service (or helper) pointed at the broker and topic."""
        env = {
            **os.environ,
            "BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "BIOMETRICS_KAFKA__TOPIC": topic,
            "BIOMETRICS_KAFKA__DEAD_LETTER_TOPIC": f"{topic}.DLQ",
            "BIOMETRICS_HTTP__HOST": "127.0.0.1",
            # Any free port for the consumer's probes: the default may be taken on this machine.
            "BIOMETRICS_CONSUMER__PROBE_PORT": "0",
        }
        if port is not None:
            env["BIOMETRICS_HTTP__PORT"] = str(port)
        if group is not None:
            env["BIOMETRICS_CONSUMER__GROUP_ID"] = group
        return env

    def start(
        self, argv: Sequence[str], core: str | None, env: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """Start argv on the core, its stdout and stderr into the log file."""
        with log.open("wb") as out:
            return self.processes.start(argv, core, env=env, stdout=out, stderr=subprocess.STDOUT)

    def cpu_pids(self, **pids: int | None) -> dict[str, int | None]:
        """The processes a row meters: those given, and the broker."""
        return {**pids, "kafka": self.broker_pid}

    def log(self, name: str) -> Path:
        """A file in the run directory for a process's output."""
        return self.directory / f"{name}.log"

    def unique_log(self, name: str) -> Path:
        """A log file of its own for a process that runs once per round."""
        number = 1
        while (path := self.log(f"{name}-{number}")).exists():
            number += 1
        return path

    def wants(self, *rows: str) -> bool:
        """Whether any of these rows was chosen."""
        return any(row in self.options.rows for row in rows)

    def group(self, prefix: str) -> str:
        """A consumer group (or topic) name no other row uses."""
        return f"bench-{prefix}-{uuid.uuid4().hex[:12]}"

    def create_topic(self, prefix: str) -> str:
        """Create a topic of its own; return its name once every partition has a leader."""
        name = self.group(prefix)
        spec = TopicSpec(name, self.settings.kafka.topic_partitions, 1)
        asyncio.run(create_topics_and_wait({"bootstrap_servers": self.bootstrap}, [spec]))
        return name

    def count_records(self, topic: str) -> int:
        """The sum of the topic's end offsets: every record ever appended to it."""
        return asyncio.run(_count(self.bootstrap, topic))

    def count_committed(self, group: str, topic: str) -> int:
        """The sum of the group's committed offsets in the topic: the records it has committed."""
        offsets = asyncio.run(committed_offsets({"bootstrap_servers": self.bootstrap}, group))
        return sum(offset for tp, offset in offsets.items() if tp.topic == topic and offset > 0)

    def run_helper(
        self, module: str, args: Sequence[str], *, log: Path, env: dict[str, str],
        timeout_s: float, on_load_core: bool = False,
    ) -> tuple[dict[str, Any], float, CpuShares]:  # fmt: skip
        """Run `python -m module args` to its end: its result, its own CPU %, the others' meter."""
        core = self.pinning.load if on_load_core else self.pinning.service
        with log.open("ab") as out, cpu_meter(self.cpu_pids()) as cpu:
            started = time.monotonic()
            argv = python_module(module, *args)
            process = self.processes.start(argv, core, env=env, stdout=out, stderr=out)
            code, cpu_s = self.processes.wait_measured(process, timeout_s)
            own_cpu = round(100 * cpu_s / (time.monotonic() - started), 1)
        if code != 0:
            raise RuntimeError(f"{module} exited with {code}; see {log}")
        return receive(log.read_text()), own_cpu, cpu


def metric(url: str, name: str) -> float:
    """A sample's value in a service's /metrics (url); 0 while it has none or does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name:
            return float(value)
    return 0.0


def wait_until(
    done: Callable[[], bool], process: subprocess.Popen[bytes], timeout_s: float, what: str
) -> None:
    """Poll done(); RuntimeError naming `what` if the process exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} (exit code {process.poll()})")
        time.sleep(0.05)


class Followed:
    """A file another process appends lines to: each complete line's (key, time), as parsed."""

    def __init__(self, path: Path, parse: Callable[[bytes], tuple[str, float] | None]) -> None:
        self.path = path
        self._parse = parse
        self._offset = 0
        self.entries: list[tuple[str, float]] = []

    def times(self) -> dict[str, float]:
        """Each key read so far and the time of its first line."""
        with self.path.open("rb") as file:
            file.seek(self._offset)
            complete = file.read().rpartition(b"\n")[0]
        if complete:
            self._offset += len(complete) + 1
            self.entries += filter(None, map(self._parse, complete.split(b"\n")))
        return dict(reversed(self.entries))


def consumed_event(line: bytes) -> tuple[str, float] | None:
    """A consumer's event line (its product output on stdout): the key and the line's time."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # a line that is not JSON (a crash's traceback, say)
    if entry.get("message") != EVENT_CONSUMED:
        return None
    return entry["key"], datetime.fromisoformat(entry["time"]).timestamp()


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _write_lines(path: Path, lines: list[bytes]) -> Path:
    if any(b"\n" in line for line in lines):
        raise ValueError("a line holds a newline")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


async def _count(bootstrap: str, topic: str) -> int:
    [described] = await describe_topics({"bootstrap_servers": bootstrap}, [topic])
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    async with AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False) as consumer:
        return sum((await consumer.end_offsets(partitions)).values())
