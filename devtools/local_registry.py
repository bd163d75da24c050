"""A real Apicurio Registry with in-memory storage, from Maven Central, for development and tests.

Clients use its Confluent-compatible API, `url` (http://127.0.0.1:<port>/apis/ccompat/v7).
`python -m devtools.local_registry` runs one until Ctrl-C or SIGTERM. Errors: LocalRegistryError.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

from devtools.processes import HOST, ChildProcess, StartStop, free_port, stop, wait_until_ok
from devtools.registry_app import (
    LocalRegistryError,
    apicurio_version,
    ensure_registry_app,
    registry_java,
)

__all__ = ["LocalRegistry", "LocalRegistryError", "apicurio_version", "ensure_registry_app"]

_CCOMPAT_PATH = "/apis/ccompat/v7"
# A small heap and the C1 compiler only: the registry holds a few test schemas, and on a
# shared 2-core machine it starts in about 3 s this way (5 s with C2) at about 150 MB RSS.
_JVM_OPTIONS = (
    "-Xms32m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
)  # fmt: skip
_STOP_TIMEOUT_S = 30.0


def _log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of the registry's log, for an error message."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"({path}: {error.strerror})"
    return "\n".join(text.splitlines()[-lines:])


def _stop_and_remove(process: subprocess.Popen[bytes], work_dir: Path) -> None:
    """Stop the JVM (SIGTERM, then SIGKILL) and remove its work dir."""
    stop(process, _STOP_TIMEOUT_S)
    shutil.rmtree(work_dir, ignore_errors=True)


class LocalRegistry(ChildProcess, StartStop):
    """One Apicurio Registry JVM on 127.0.0.1 with in-memory storage: start()/stop(), or a with."""

    def __init__(
        self,
        *,
        port: int | None = None,
        runner_jar: Path | None = None,
        startup_timeout_s: float = 90.0,
    ) -> None:
        self._requested_port, self._port = port, port
        self._runner_jar = runner_jar
        self._startup_timeout_s = startup_timeout_s
        self._work_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes], Path], LocalRegistry] | None = (
            None
        )

    @property
    def url(self) -> str:
        """The base URL of the Confluent-compatible API."""
        if self._port is None or self._process is None:
            raise LocalRegistryError("LocalRegistry has not been started")
        return f"http://{HOST}:{self._port}{_CCOMPAT_PATH}"

    @property
    def log_file(self) -> Path:
        """The JVM's stdout and stderr, in a temp dir removed by stop()."""
        if self._work_dir is None:
            raise LocalRegistryError("LocalRegistry has not been started")
        return self._work_dir / "registry.log"

    def start(self) -> None:
        """Assemble the registry if needed, launch it and wait until its ccompat API answers."""
        if self.is_running:
            raise LocalRegistryError("LocalRegistry is already running")
        self.stop()  # a JVM that died by itself leaves its temp dir behind
        runner_jar = self._runner_jar or ensure_registry_app()
        try:
            self._launch(runner_jar)
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the JVM (SIGTERM, then SIGKILL after 30 s) and remove its temp dir; idempotent."""
        if self._finalizer is not None:
            self._finalizer()  # runs _stop_and_remove once, and detaches itself
            self._finalizer = None
        elif self._work_dir is not None:  # made, but the JVM did not start in it
            shutil.rmtree(self._work_dir, ignore_errors=True)
        self._process, self._work_dir, self._port = None, None, self._requested_port

    def wait(self) -> int:
        """Block until the JVM exits; return its exit code."""
        if self._process is None:
            raise LocalRegistryError("LocalRegistry has not been started")
        return self._process.wait()

    def _launch(self, runner_jar: Path) -> None:
        """Start the JVM in a temp dir of its own, stdout and stderr to registry.log."""
        java = registry_java()
        self._port = self._port or free_port()
        self._work_dir = work_dir = Path(tempfile.mkdtemp(prefix="local-registry-"))
        (work_dir / "tmp").mkdir()
        command = [
            java, *_JVM_OPTIONS,
            # Vert.x's file cache and the like go here, and are removed with it.
            f"-Djava.io.tmpdir={work_dir / 'tmp'}",
            f"-Dquarkus.http.host={HOST}", f"-Dquarkus.http.port={self._port}",
            "-jar", str(runner_jar),
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            # A session of its own: Ctrl-C reaches us, and we stop the registry in order.
            process = subprocess.Popen(
                command,
                cwd=work_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._process = process
        # Also the safety net: a registry left running when the interpreter exits is stopped then.
        self._finalizer = weakref.finalize(self, _stop_and_remove, process, work_dir)

    def _wait_until_ready(self) -> None:
        """Poll GET <url>/subjects until it answers 200, the JVM dies, or the deadline passes."""
        process = self._process
        assert process is not None
        if wait_until_ok(
            f"{self.url}/subjects",
            timeout_s=self._startup_timeout_s,
            alive=lambda: process.poll() is None,
        ):
            return
        if (code := process.poll()) is not None:
            reason = f"exited with {code} during start-up"
        else:
            reason = f"did not answer within {self._startup_timeout_s:.0f} s"
        raise LocalRegistryError(
            f"Apicurio Registry {apicurio_version()} {reason}; the end of its log:\n"
            f"{_log_tail(self.log_file)}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run a registry until Ctrl-C or SIGTERM, printing its ccompat URL on stdout."""
    parser = argparse.ArgumentParser(prog="python -m devtools.local_registry", description=__doc__)
    parser.add_argument("--port", type=int, help="HTTP port (default: a free one)")
    args = parser.parse_args(argv)
    # SIGINT and SIGTERM raise KeyboardInterrupt, and the with block stops the JVM; SIGINT too,
    # as a shell that starts us in the background has us ignore it.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        with LocalRegistry(port=args.port) as registry:
            print(f"url={registry.url}", flush=True)
            print(f"pid={registry.pid} log={registry.log_file}", file=sys.stderr, flush=True)
            code = registry.wait()
            tail = _log_tail(registry.log_file)
            print(f"registry exited with {code}; its log ends:\n{tail}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except LocalRegistryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
