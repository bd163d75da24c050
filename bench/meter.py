"""CPU and memory of running processes, read from /proc while a row runs."""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process (all its threads) has used so far; 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name may hold spaces and parentheses: split after its closing one.
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return 0.0
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS_PER_S


def rss_bytes(pid: int) -> int:
    """The process's resident set size in bytes; 0 if gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except OSError:
        return 0


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy (not idle, not waiting for I/O) since boot."""
    with open("/proc/stat", "rb") as stat:
        fields = [int(field) for field in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    # guest time is already counted in user time.
    return (sum(fields[:8]) - idle - iowait) / _TICKS_PER_S


class CpuMeter:
    """CPU use of named processes over a window, and of the whole machine, in % of one core."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._start: dict[str, float] = {}
        self._machine_start = 0.0
        self._started_at = 0.0
        self.percent: dict[str, float] = {}
        self.machine_percent = 0.0

    def __enter__(self) -> CpuMeter:
        self._started_at = time.monotonic()
        self._machine_start = machine_busy_seconds()
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = max(time.monotonic() - self._started_at, 1e-9)
        self.percent = {
            name: round(100 * (cpu_seconds(pid) - self._start[name]) / elapsed, 1)
            for name, pid in self._pids.items()
        }
        busy = machine_busy_seconds() - self._machine_start
        self.machine_percent = round(100 * busy / elapsed, 1)

    def shares(self, **measured_elsewhere: float) -> dict[str, float]:
        """The named processes, those measured elsewhere (e.g. from their rusage), and "other":
        the rest of the machine's busy time, which is noise from outside the benchmark."""
        named = {**self.percent, **measured_elsewhere}
        other = max(self.machine_percent - sum(named.values()), 0.0)
        return {**named, "other": round(other, 1)}


class RssSampler:
    """Samples a process's RSS every `interval_s` on a thread, from enter to exit."""

    def __init__(self, pid: int, interval_s: float = 1.0) -> None:
        self._pid = pid
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.samples: list[tuple[float, int]] = []

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((round(time.monotonic() - started, 2), rss_bytes(self._pid)))
            self._stop.wait(self._interval_s)
