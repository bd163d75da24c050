"""Processes: the one owner of every process the benchmark starts, each pinned and ended by PID."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from devtools.processes import stop, wait_until_ok

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Pinning:
    """Which CPU each side runs on: the system under test, and the load generators."""

    service: str | None
    load: str | None

    @classmethod
    def for_this_machine(cls) -> Pinning:
        """Core 0 for the services, core 1 for the load, when taskset and 2+ cores exist."""
        if shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2:
            first, second, *_ = sorted(os.sched_getaffinity(0))
            return cls(str(first), str(second))
        return cls(None, None)

    def describe(self) -> str:
        """One sentence on how the cores were shared."""
        if self.service is None:
            return "no pinning (taskset or a second core is missing): everything shares the CPUs"
        return (
            f"system under test (each service, bare client or kcat) pinned to core "
            f"{self.service}; wrk, the bench driver and py-spy pinned to core {self.load}; "
            f"the Kafka broker unpinned, sharing both; in the end-to-end row the consumer runs "
            f"on core {self.load} beside wrk"
        )


@dataclass(frozen=True)
class ToolRun:
    """A finished command: its exit code, output, wall time and CPU time (user + system)."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float


def python_module(module: str, *args: str) -> list[str]:
    """The command that runs a module of this project with the current interpreter."""
    return [sys.executable, "-m", module, *args]


class Processes:
    """Starts pinned processes in their own sessions and stops each by PID, even on failure."""

    def __init__(self, pinning: Pinning) -> None:
        self.pinning = pinning
        self._running: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(
        self,
        argv: Sequence[str],
        core: str | None,
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: IO[Any] | int | None = subprocess.DEVNULL,
        stderr: IO[Any] | int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start argv on the given core (taskset execs it, so the PID is the program's)."""
        prefix = ["taskset", "-c", core] if core is not None else []
        process = subprocess.Popen(
            [*prefix, *argv],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        self._running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
        """Signal the process by PID, wait up to 30 s, then SIGKILL; return its exit code."""
        code = stop(process, sig=sig)
        if process in self._running:
            self._running.remove(process)
        return code

    def stop_all(self) -> None:
        """Stop every process still running, the most recent first."""
        for process in reversed(list(self._running)):
            self.stop(process)

    def wait_measured(
        self, process: subprocess.Popen[bytes], timeout_s: float
    ) -> tuple[int, float]:
        """Wait for the process like wait(), also returning the CPU seconds it used."""
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.stop(process, signal.SIGKILL)
                raise TimeoutError(f"{process.args!r} did not finish within {timeout_s:.0f} s")
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        self._running.remove(process)
        return process.returncode, _cpu_seconds(usage)

    def run(self, argv: Sequence[str], core: str | None, timeout_s: float) -> ToolRun:
        """Run a command to completion, capturing its output and measuring its CPU time."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.monotonic()
            process = self.start(argv, core, stdout=out, stderr=err)
            code, cpu = self.wait_measured(process, timeout_s)
            wall = time.monotonic() - started
            out.seek(0)
            err.seek(0)
            return ToolRun(code, out.read().decode(), err.read().decode(), wall, cpu)


def _cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Poll url until it answers 200; raise if the process dies or the deadline passes."""
    if not wait_until_ok(url, timeout_s, alive=lambda: process.poll() is None):
        raise RuntimeError(
            f"{url} did not answer 200 within {timeout_s:.0f} s ({process.args!r}: exit code "
            f"{process.poll()})"
        )


def wait_for_text(
    path: Path, text: bytes, writer: subprocess.Popen[bytes], timeout_s: float = 60
) -> None:
    """Poll the file until it holds text; raise if its writer exits or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while text not in path.read_bytes():
        if writer.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no {text.decode()!r} in {path}")
        time.sleep(0.02)
