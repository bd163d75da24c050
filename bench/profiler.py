"""Sampling profiles with py-spy, and the frames where the time goes."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.processes import ROOT, Processes, wait_for_text

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
        wait_for_text(self.log, _SAMPLING_LINE, self.process, timeout_s)

    def stop(self, processes: Processes) -> Path:
        """SIGINT py-spy (it then writes the file) and wait for it."""
        processes.stop(self.process, signal.SIGINT)
        return self.output


def start_recording(processes: Processes, pid: int, output: Path) -> Recording:
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
        process = processes.start(argv, processes.pinning.load, stdout=out, stderr=out)
    return Recording(process, output, log)


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
