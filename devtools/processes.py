"""Process helpers shared by devtools, the benchmark and the tests: free ports, stopping a child
process, and waiting for a URL to answer 200."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from types import TracebackType
from typing import Self

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
