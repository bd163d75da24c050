"""Sampling profiles with py-spy, and the frames where the time goes."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.metering import ROOT
from devtools.processes import Processes

if TYPE_CHECKING:
    from bench.context import Bench

_PROJECT_PACKAGES = frozenset({"producer_service", "consumer_service", "zones_service", "shared"})
_SAMPLING_LINE = b"py-spy> Sampling process"  # what py-spy prints once attached
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter or on PATH, if installed."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    """A running py-spy attached to one process; stop() makes it write its samples."""

    process: subprocess.Popen[bytes]
    output: Path
    log: Path  # py-spy's own output

    def wait_until_sampling(self, timeout_s: float = 30) -> None:
        """Return once py-spy has attached and samples; raise if it exits or takes too long."""
        deadline = time.monotonic() + timeout_s
        while _SAMPLING_LINE not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"py-spy is not sampling; see {self.log}")
            time.sleep(0.02)

    def stop(self, processes: Processes) -> Path:
        """SIGINT py-spy (it then writes the file) and wait for it."""
        processes.stop(self.process, signal.SIGINT)
        return self.output


def start_recording(bench: Bench, pid: int, output: Path) -> Recording:
    """Attach py-spy to pid, sampling 200 times a second without pausing the target."""
    executable = py_spy()
    if executable is None:
        raise RuntimeError("py-spy is not installed: pip install -e '.[bench]'")
    argv = [
        *(executable, "record", "--pid", str(pid), "--rate", "200", "--nonblocking"),
        *("--format", "raw", "--output", str(output)),
    ]
    log = output.with_suffix(".py-spy.log")
    with log.open("wb") as out:
        process = bench.processes.start(argv, bench.pinning.load, stdout=out, stderr=out)
    return Recording(process, output, log)


def profile_under(bench: Bench, name: str, pid: int, load: str, run: Callable[[], float]) -> None:
    """Record pid with py-spy while run() loads it (returning the events/s it reached); keep the
    profile's summary in the report under name."""
    output = bench.directory / f"profile-{name.replace(' ', '-')}.txt"
    recording = start_recording(bench, pid, output)
    recording.wait_until_sampling()
    events_per_s = run()
    recording.stop(bench.processes)
    bench.report.profiles[name] = {
        "file": str(output),
        "load": load,
        "events_per_s": events_per_s,
        **top_frames(output),
    }


def top_frames(raw: Path, limit: int = 15) -> dict[str, Any]:
    """Summarise py-spy's collapsed stacks, each in % of the samples: the busiest leaf frames
    (self time), the self time per package, and the project's own functions by total time (the
    time spent in them and in what they call)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_frame(frame) for frame in stack.split(";")]
        own[frames[-1][0]] += count
        packages[frames[-1][1]] += count
        for name in {name for name, package in frames if package in _PROJECT_PACKAGES}:
            total[name] += count

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / samples, 1)] for name, n in counter.most_common(limit)]

    if not samples:
        return {"samples": 0, "self": [], "packages": [], "project_total": []}
    return {
        "samples": samples,
        "self": share(own),
        "packages": share(packages),
        "project_total": share(total),
    }


def _frame(text: str) -> tuple[str, str]:
    """`function (file:line)` as (`function (short file)`, package)."""
    match = _FRAME.match(text)
    if match is None:
        return text, "?"
    short = _short_path(match["file"])
    return f"{match['function']} ({short})", _package(short)


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail if marker == "site-packages/" else "stdlib/" + tail.split("/", 1)[-1]
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def _package(short: str) -> str:
    parts = short.split("/")
    if parts[0] == "stdlib":
        return "stdlib/" + parts[1].removesuffix(".py")
    # The project's own files may be named from any working directory.
    project = [part for part in parts[:-1] if part in _PROJECT_PACKAGES]
    return project[-1] if project else parts[0].removesuffix(".py")
