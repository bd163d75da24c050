"""The one process manager of devtools, the benchmark and the tests (Processes: every child in
its own session, optionally pinned to a core, stopped by PID), and its helpers: free ports,
stopping a child, waiting for a URL to answer 200."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    [port] = free_ports(1)
    return port


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30, sig: int = signal.SIGTERM) -> int:
    """Send sig (SIGTERM) unless the process has exited, wait up to timeout_s, then SIGKILL it;
    return its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Poll url until it answers 200; RuntimeError if the process exits or the deadline passes."""
    if not wait_until_ok(url, timeout_s, alive=lambda: process.poll() is None):
        raise RuntimeError(
            f"{url} did not answer 200 within {timeout_s:.0f} s ({process.args!r}: exit code "
            f"{process.poll()})"
        )


def wait_until_ok(
    url: str,
    timeout_s: float = 60,
    alive: Callable[[], bool] = lambda: True,
    interval_s: float = 0.1,
) -> bool:
    """Poll url until it answers 200: True then, False once the deadline passes or `alive()`
    turns false (the process that should serve it died, or the caller gave up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(interval_s)
    return False


class ChildProcess:
    """Something that owns one child process (a broker or registry JVM), as `_process`."""

    _process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process id, or None when it is not running."""
        return self._process.pid if self._process and self.is_running else None

    @property
    def is_running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None


class StartStop:
    """start() on entering a with block, stop() on leaving it, whatever happened."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class Processes:
    """The owner of every process it starts: each in its own session (on a core of its own when
    given one: taskset execs the program, so the PID is the program's), stopped by PID. Leaving
    a with block, or stop_all(), stops every one still running, the most recent first."""

    def __init__(self, cwd: Path | None = None, stop_timeout_s: float = 30) -> None:
        self._cwd = cwd
        self._stop_timeout_s = stop_timeout_s
        self._running: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    def start(
        self,
        argv: Sequence[str],
        core: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: IO[Any] | int | None = subprocess.DEVNULL,
        stderr: IO[Any] | int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start argv (env: its whole environment, else this process's) on the core given."""
        prefix = ["taskset", "-c", core] if core is not None else []
        process = subprocess.Popen(
            [*prefix, *argv],
            cwd=self._cwd,
            env=None if env is None else dict(env),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        self._running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
        """Signal the process by PID, wait for it, then SIGKILL it; return its exit code."""
        code = stop(process, self._stop_timeout_s, sig)
        if process in self._running:
            self._running.remove(process)
        return code

    def stop_all(self, sig: int = signal.SIGTERM) -> None:
        """Stop every process still running, the most recent first."""
        for process in reversed(list(self._running)):
            self.stop(process, sig)

    def stop_together(self, processes: Sequence[subprocess.Popen[bytes]]) -> list[int]:
        """Stop the processes as stop() does, signalling them all before waiting for any, so
        that their shutdowns overlap; return their exit codes in order."""
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(self._stop_timeout_s)
        # Only one still running after the timeout is signalled again, with SIGKILL.
        return [self.stop(process, signal.SIGKILL) for process in processes]

    def wait_measured(
        self, process: subprocess.Popen[bytes], timeout_s: float
    ) -> tuple[int, float]:
        """Wait for the process to exit; return its exit code and the CPU seconds it used (its
        rusage: once reaped, a process can no longer be asked). SIGKILL and TimeoutError after
        timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.stop(process, signal.SIGKILL)
                raise TimeoutError(f"{process.args!r} did not finish within {timeout_s:.0f} s")
            wait_for_exit(process.pid, deadline - time.monotonic())
        process.returncode = os.waitstatus_to_exitcode(status)
        self._running.remove(process)
        return process.returncode, usage.ru_utime + usage.ru_stime


def wait_for_exit(pid: int, timeout_s: float) -> None:
    """Return once the child has exited (it is left to be reaped) or timeout_s has passed."""
    exited = os.pidfd_open(pid)  # readable once the process has exited (Linux)
    try:
        select.select([exited], [], [], max(timeout_s, 0))
    finally:
        os.close(exited)
