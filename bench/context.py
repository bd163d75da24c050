"""Bench: what every row needs (options, processes, the broker, the files, the report)."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.options import Options
from bench.process import Processes
from bench.results import Report
from shared.settings import Settings


@dataclass(frozen=True)
class Files:
    """The request bodies and records every row draws from."""

    bodies: Path  # one standard event a line, each its own device
    batches: Path  # one JSON array of events a line
    records: Path  # key<TAB>value lines, as the producer service encodes them
    template: Path  # one event whose device id wrk replaces


@dataclass
class Bench:
    """What every row needs: options, processes, the broker, the files, the report."""

    options: Options
    processes: Processes
    bootstrap: str
    broker_pid: int | None
    directory: Path
    files: Files
    settings: Settings
    report: Report

    def env(self, topic: str, port: int | None = None, group: str | None = None) -> dict[str, str]:
        """BIOMETRICS_* variables pointing a service (or helper) at the broker and topic."""
        env = {
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
        """A consumer group id no other row uses."""
        return f"bench-{prefix}-{uuid.uuid4().hex[:12]}"


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(f"bench: {message}", file=sys.stderr, flush=True)
