"""run_wrk and run_paced_wrk: HTTP load from wrk with the bench's Lua script, parsed."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.process import Processes

_SCRIPT = Path(__file__).with_name("wrk.lua")
_MARKER = "WRK_RESULT "


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no summary."""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured; latencies in milliseconds."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_percent: float

    @property
    def succeeded(self) -> int:
        """Requests answered with a status below 400."""
        return max(self.requests - self.errors, 0)


def wrk_available() -> bool:
    """Tell whether the wrk executable is on PATH."""
    return shutil.which("wrk") is not None


def run_wrk(
    processes: Processes,
    url: str,
    path: str,
    bodies: Path,
    connections: int,
    seconds: float,
) -> WrkResult:
    """POST the bodies in turn on `connections` keep-alive connections for `seconds`."""
    return _run(processes, url, connections, seconds, ["cycle", path, str(bodies)])


def run_paced_wrk(
    processes: Processes,
    url: str,
    path: str,
    template: Path,
    sent: Path,
    rate: float,
    connections: int,
    seconds: float,
) -> WrkResult:
    """POST `rate` events a second, each with its own device id, recording each one's
    wall-clock send time in `sent` (device id<TAB>seconds since the epoch)."""
    prefix = str(uuid.uuid4())[:23]  # the first four groups; wrk appends 12 hex digits
    args = ["paced", path, str(template), str(sent), f"{rate:.3f}", prefix]
    return _run(processes, url, connections, seconds, args)


def _run(
    processes: Processes, url: str, connections: int, seconds: float, script_args: list[str]
) -> WrkResult:
    if not wrk_available():
        raise WrkError("wrk is not installed (apt-get install wrk)")
    argv = [
        *("wrk", "-t1", f"-c{connections}", f"-d{max(round(seconds), 1)}s", "--timeout", "10s"),
        *("-s", str(_SCRIPT), url, "--", *script_args),
    ]
    run = processes.run(argv, processes.pinning.load, timeout_s=seconds + 60)
    if run.returncode != 0:
        raise WrkError(f"wrk exited with {run.returncode}: {run.stderr.strip()}")
    lines = [line for line in run.stdout.splitlines() if line.startswith(_MARKER)]
    if not lines:
        raise WrkError(f"wrk printed no summary:\n{run.stdout}{run.stderr}")
    summary = json.loads(lines[-1].removeprefix(_MARKER))
    seconds_run = summary["duration_us"] / 1e6
    errors = sum(summary[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        requests=summary["requests"],
        seconds=seconds_run,
        errors=errors,
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        cpu_percent=round(100 * run.cpu_s / max(seconds_run, 1e-9), 1),
    )
