"""Sampling profiles with py-spy, and the frames where the time goes."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.metering import ROOT

if TYPE_CHECKING:
    from bench.context import Bench

_PROJECT_PACKAGES = frozenset({"producer_service", "consumer_service", "zones_service", "shared"})
_SAMPLING_LINE = b"py-spy> Sampling process"  # what py-spy prints once attached
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@contextmanager
def profiling(bench: Bench, name: str, pid: int, load: str) -> Iterator[dict[str, Any]]:
    """py-spy on pid, sampling 200/s without pausing it, from enter (once sampling) to exit."""
    beside = Path(sys.executable).with_name("py-spy")
    executable = str(beside) if beside.exists() else shutil.which("py-spy")
    if executable is None:
        raise RuntimeError("py-spy is not installed: pip install -e '.[bench]'")
    output = bench.directory / f"profile-{name.replace(' ', '-')}.txt"
    log = output.with_suffix(".py-spy.log")  # py-spy's own output
    argv = [
        *(executable, "record", "--pid", str(pid), "--rate", "200", "--nonblocking"),
        *("--format", "raw", "--output", str(output)),
    ]
    with log.open("wb") as out:
        process = bench.processes.start(argv, bench.pinning.load, stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while _SAMPLING_LINE not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"py-spy is not sampling; see {log}")
        time.sleep(0.02)
    # The report's entry: the caller adds the events/s the load reached.
    profile = bench.report.profiles[name] = {"file": str(output), "load": load}
    try:
        yield profile
    finally:
        bench.processes.stop(process, signal.SIGINT)  # py-spy writes the file on SIGINT
    profile.update(top_frames(output))


def top_frames(raw: Path, limit: int = 15) -> dict[str, Any]:
    """py-spy's stacks in % of the samples: self time, per package, the project's total time."""
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
    with contextlib.suppress(ValueError):
        return str(Path(path).resolve().relative_to(ROOT))
    return path


def _package(short: str) -> str:
    parts = short.split("/")
    if parts[0] == "stdlib":
        return "stdlib/" + parts[1].removesuffix(".py")
    # The project's own files may be named from any working directory.
    project = [part for part in parts[:-1] if part in _PROJECT_PACKAGES]
    return project[-1] if project else parts[0].removesuffix(".py")
