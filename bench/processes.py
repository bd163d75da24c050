"""Processes: the one owner of every process the benchmark starts, each pinned and ended by PID;
and what processes cost while a row runs (CPU shares, RSS over time), measured with psutil."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from devtools.processes import stop, wait_until_ok

ROOT = Path(__file__).resolve().parents[1]
_STOP_TIMEOUT_S = 30.0


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
            f"the Kafka broker unpinned, sharing both; in the end-to-end rows the consumer, or "
            f"the zone processor and the reader of its output, run on core {self.load} beside wrk"
        )


def python_module(module: str, *args: str) -> list[str]:
    """The command that runs a module of this project with the current interpreter."""
    return [sys.executable, "-m", module, *args]


class Processes:
    """Starts pinned processes in their own sessions and stops each by PID; its owner calls
    stop_all() on the way out, even on failure."""

    def __init__(self, pinning: Pinning) -> None:
        self.pinning = pinning
        self._running: list[subprocess.Popen[bytes]] = []

    def stop_all(self) -> None:
        """Stop every process still running, the most recent first."""
        for process in reversed(list(self._running)):
            self.stop(process)

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

    def stop_together(self, processes: Sequence[subprocess.Popen[bytes]]) -> list[int]:
        """Stop the processes as stop() does, signalling them all before waiting for any, so
        that their shutdowns overlap; return their exit codes in order."""
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(_STOP_TIMEOUT_S)
        # Only one still running after the timeout is signalled again, with SIGKILL.
        return [self.stop(process, signal.SIGKILL) for process in processes]

    def wait_measured(
        self, process: subprocess.Popen[bytes], timeout_s: float
    ) -> tuple[int, float]:
        """Wait for the process like wait(), also returning the CPU seconds it used (its rusage:
        psutil cannot see a process once it has been reaped)."""
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if now > deadline:
                self.stop(process, signal.SIGKILL)
                raise TimeoutError(f"{process.args!r} did not finish within {timeout_s:.0f} s")
            _wait_for_exit(process.pid, deadline - now)
        process.returncode = os.waitstatus_to_exitcode(status)
        self._running.remove(process)
        return process.returncode, usage.ru_utime + usage.ru_stime


def _wait_for_exit(pid: int, timeout_s: float) -> None:
    """Return once the child has exited (it is left to be reaped) or timeout_s has passed; where
    there are no pidfds (Linux only), after 50 ms at most."""
    if not hasattr(os, "pidfd_open"):
        time.sleep(min(max(timeout_s, 0), 0.05))
        return
    exited = os.pidfd_open(pid)  # readable once the process has exited
    try:
        select.select([exited], [], [], max(timeout_s, 0))
    finally:
        os.close(exited)


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


@dataclass
class CpuShares:
    """CPU use of named processes over a window, and of the whole machine, in % of one core."""

    percent: dict[str, float] = field(default_factory=dict)
    machine_percent: float = 0.0

    def shares(self, **measured_elsewhere: float) -> dict[str, float]:
        """The named processes, those measured elsewhere (e.g. from their rusage), and "other":
        the rest of the machine's busy time, which is noise from outside the benchmark."""
        named = {**self.percent, **measured_elsewhere}
        other = max(self.machine_percent - sum(named.values()), 0.0)
        return {**named, "other": round(other, 1)}


@contextmanager
def cpu_meter(pids: dict[str, int | None]) -> Iterator[CpuShares]:
    """Meter the named processes and the machine from enter to exit; the shares are filled in
    on exit."""
    processes = {name: psutil.Process(pid) for name, pid in pids.items() if pid is not None}
    # Each cpu_percent() call measures from the one before: these set the window's start.
    psutil.cpu_percent()
    for process in processes.values():
        _cpu_percent(process)
    meter = CpuShares()
    yield meter
    meter.percent = {name: round(_cpu_percent(process), 1) for name, process in processes.items()}
    # psutil's machine figure is the mean over all cores; ours is in cores' worth.
    meter.machine_percent = round(psutil.cpu_percent() * (psutil.cpu_count() or 1), 1)


@contextmanager
def rss_sampler(pid: int, interval_s: float = 1.0) -> Iterator[list[tuple[float, int]]]:
    """Sample the process's RSS every interval_s on a thread, from enter to exit, into the list
    yielded: (seconds since enter, bytes)."""
    process = psutil.Process(pid)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not stop.is_set():
            try:
                rss = process.memory_info().rss
            except psutil.NoSuchProcess:
                rss = 0
            samples.append((round(time.monotonic() - started, 2), rss))
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def _cpu_percent(process: psutil.Process) -> float:
    """The process's CPU since the last call, in % of one core; 0 once it has gone."""
    try:
        return process.cpu_percent()
    except psutil.NoSuchProcess:
        return 0.0
