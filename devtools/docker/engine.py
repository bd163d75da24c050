"""A Docker engine of the project's own: Debian's dockerd, started by hand, stopped by its PID.

For machines where no engine runs and no systemd could start one (CI here). Its images and
volumes live under the data root, ~/.cache/biometrics/docker by default, so they outlive it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from devtools.docker.client import DockerClient
from devtools.docker.command import run_command
from devtools.docker.errors import EngineError
from devtools.docker.paths import cache_root

# Debian's packages: the engine, the base images' builder, and the Compose v1 client.
_APT_PACKAGES = ("docker.io", "debootstrap", "docker-compose")
# Short on purpose: containerd's sockets live below the exec root, and a unix socket's path may
# not exceed 107 bytes.
_RUN_DIR = Path("/run/biometrics-docker")
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 60.0
_POLL_INTERVAL_S = 0.2
_APT_TIMEOUT_S = 900.0


class DockerEngine:
    """dockerd with its own data root, exec root and socket: start(), stop(), client()."""

    def __init__(self, data_root: Path | None = None, run_dir: Path = _RUN_DIR) -> None:
        self.data_root = data_root or cache_root() / "docker"
        self._run_dir = run_dir

    @property
    def socket(self) -> Path:
        """The engine's API socket."""
        return self._run_dir / "docker.sock"

    @property
    def host(self) -> str:
        """The engine's address, for DOCKER_HOST."""
        return f"unix://{self.socket}"

    @property
    def log_file(self) -> Path:
        """Where dockerd writes its log (kept beside the data root, for reading after a failure)."""
        return self.data_root.parent / "dockerd.log"

    @property
    def pid(self) -> int | None:
        """The running dockerd's process id, from its pidfile, or None."""
        try:
            pid = int((self._run_dir / "dockerd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_alive(pid) else None

    def client(self) -> DockerClient:
        """A docker command line pointed at this engine."""
        return DockerClient(self.host)

    def answers(self) -> bool:
        """Tell whether the engine answers its API's ping."""
        return _pings(self.socket)

    def start(self) -> None:
        """Install dockerd if missing, start it and return once it answers (at once if it does)."""
        if self.answers():
            return
        ensure_installed()
        self.data_root.mkdir(parents=True, exist_ok=True)
        self._run_dir.mkdir(parents=True, exist_ok=True)
        (self._run_dir / "dockerd.pid").unlink(missing_ok=True)  # left by an engine that died
        command = [
            "dockerd",
            *("--data-root", str(self.data_root)),
            *("--exec-root", str(self._run_dir / "exec")),
            *("--pidfile", str(self._run_dir / "dockerd.pid")),
            *("-H", self.host),
            # Published ports listen on loopback unless a compose file names an address.
            *("--ip", "127.0.0.1"),
            # No masquerading: containers reach each other and this machine, nothing beyond.
            "--ip-masq=false",
        ]
        with self.log_file.open("wb") as log:  # this start's log only
            # A session of its own: it outlives this command and ends only by stop().
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self.answers():
            if process.poll() is not None or time.monotonic() > deadline:
                self._kill(process.pid)
                raise EngineError(
                    f"dockerd did not start (exit code {process.poll()}); {self.log_file} ends:\n"
                    + _tail(self.log_file)
                )
            time.sleep(_POLL_INTERVAL_S)

    def stop(self) -> None:
        """Remove every container and stop dockerd by its PID (SIGTERM, then SIGKILL)."""
        pid = self.pid
        if pid is None:
            return
        if self.answers():
            client = self.client()
            containers = client.run("ps", "--all", "--quiet").split()
            if containers:
                client.run("rm", "--force", "--volumes", *containers)
        os.kill(pid, signal.SIGTERM)
        if not _wait_for_exit(pid, _STOP_TIMEOUT_S):
            self._kill(pid)

    @staticmethod
    def _kill(pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        _wait_for_exit(pid, 10.0)


def ensure_installed() -> None:
    """apt-get install dockerd, debootstrap and docker-compose where any of them is missing."""
    if all(shutil.which(tool) for tool in ("dockerd", "debootstrap", "docker-compose")):
        return
    apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", *_APT_PACKAGES]):
        run_command(command, timeout_s=_APT_TIMEOUT_S, error=EngineError, env=apt)


def _pings(path: Path) -> bool:
    """Send GET /_ping to the API socket at path; tell whether it answered OK."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2.0)
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n", 1)[0]
            return status_line.split(b" ")[1:2] == [b"200"]
    except OSError:
        return False


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent has not reaped it yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_INTERVAL_S)
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} is unreadable)"
