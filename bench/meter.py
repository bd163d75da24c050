"""CPU and memory of running processes while a row runs, measured with psutil."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import psutil


class CpuMeter:
    """CPU use of named processes over a window, and of the whole machine, in % of one core."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._processes = {
            name: psutil.Process(pid) for name, pid in pids.items() if pid is not None
        }
        self.percent: dict[str, float] = {}
        self.machine_percent = 0.0

    def __enter__(self) -> CpuMeter:
        # Each cpu_percent() call measures from the one before: these set the window's start.
        psutil.cpu_percent()
        for process in self._processes.values():
            _cpu_percent(process)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.percent = {
            name: round(_cpu_percent(process), 1) for name, process in self._processes.items()
        }
        # psutil's machine figure is the mean over all cores; ours is in cores' worth.
        self.machine_percent = round(psutil.cpu_percent() * (psutil.cpu_count() or 1), 1)

    def shares(self, **measured_elsewhere: float) -> dict[str, float]:
        """The named processes, those measured elsewhere (e.g. from their rusage), and "other":
        the rest of the machine's busy time, which is noise from outside the benchmark."""
        named = {**self.percent, **measured_elsewhere}
        other = max(self.machine_percent - sum(named.values()), 0.0)
        return {**named, "other": round(other, 1)}


class RssSampler:
    """Samples a process's RSS every `interval_s` on a thread, from enter to exit."""

    def __init__(self, pid: int, interval_s: float = 1.0) -> None:
        self._process = psutil.Process(pid)
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
            try:
                rss = self._process.memory_info().rss
            except psutil.NoSuchProcess:
                rss = 0
            self.samples.append((round(time.monotonic() - started, 2), rss))
            self._stop.wait(self._interval_s)


def _cpu_percent(process: psutil.Process) -> float:
    """The process's CPU since the last call, in % of one core; 0 once it has gone."""
    try:
        return process.cpu_percent()
    except psutil.NoSuchProcess:
        return 0.0
