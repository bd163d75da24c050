"""Which core each side runs on (Pinning), and what processes cost: CPU shares, RSS (psutil)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

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
            f"the Kafka broker unpinned, sharing both; in the end-to-end rows the consumer, or "
            f"the zone processor and the reader of its output, run on core {self.load} beside wrk"
        )


def python_module(module: str, *args: str) -> list[str]:
    """The command that runs a module of this project with the current interpreter."""
    return [sys.executable, "-m", module, *args]


@dataclass
class CpuShares:
    """CPU use of named processes over a window, and of the whole machine, in % of one core."""

    percent: dict[str, float] = field(default_factory=dict)
    machine_percent: float = 0.0

    def shares(self, **measured_elsewhere: float) -> dict[str, float]:
        """The named processes, those measured elsewhere, and "other": the rest of the machine."""
        named = {**self.percent, **measured_elsewhere}
        other = max(self.machine_percent - sum(named.values()), 0.0)
        return {**named, "other": round(other, 1)}


@contextmanager
def cpu_meter(pids: dict[str, int | None]) -> Iterator[CpuShares]:
    """Meter the named processes and the machine from enter to exit (filled in on exit)."""
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
    """Sample the process's RSS on a thread into the list yielded: (seconds since enter, bytes)."""
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


def rss_summary(prefix: str, samples: list[tuple[float, int]]) -> dict[str, object]:
    """A row's details of sampled RSS: start, max and end in MiB, and the samples."""
    mib = [value / 2**20 for _, value in samples]
    return {
        f"{prefix}_start_mb": round(mib[0], 1) if mib else None,
        f"{prefix}_max_mb": round(max(mib), 1) if mib else None,
        f"{prefix}_end_mb": round(mib[-1], 1) if mib else None,
        f"{prefix}_samples": samples,
    }


def _cpu_percent(process: psutil.Process) -> float:
    """The process's CPU since the last call, in % of one core; 0 once it has gone."""
    try:
        return process.cpu_percent()
    except psutil.NoSuchProcess:
        return 0.0
