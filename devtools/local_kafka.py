"""A real single-node KRaft Apache Kafka broker, assembled from Maven Central jars, for tests.

It always listens for PLAINTEXT; given SASL users it also listens for SASL_PLAINTEXT, where each
user can log in with PLAIN or SCRAM-SHA-512. Errors: LocalKafkaError (see devtools.errors).
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path

from devtools.broker_probe import accepts_connections, answers_metadata, logs_in_with_sasl
from devtools.errors import LocalKafkaError
from devtools.kafka_classpath import (
    KAFKA_FILES,
    ensure_kafka_classpath,
    java_executable,
    kafka_version,
)
from devtools.processes import ChildProcess, StartStop, free_ports, stop
from devtools.server_properties import (
    HOST,
    SASL_MECHANISMS,
    Listeners,
    Quorum,
    check_sasl_users,
    read_listeners,
    render_server_properties,
    scram_format_arguments,
)

__all__ = [
    "SASL_MECHANISMS",
    "LocalKafka",
    "LocalKafkaError",
    "ensure_kafka_classpath",
    "kafka_version",
]

_LOG4J2_CONFIG = KAFKA_FILES / "log4j2.properties"
_JVM_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
# The C1 compiler only: the JVM starts in about a third of the time on 2 cores (the C2 compiler
# competes for them with everything else starting), for code that is slower under long load.
# Kafka's command-line tools always run so; the broker does unless it is started for peak speed.
_QUICK_START = ("-XX:TieredStopAtLevel=1",)
_POLL_INTERVAL_S = 0.25
_STOP_TIMEOUT_S = 30.0
_TOOL_TIMEOUT_S = 120.0


def random_cluster_id() -> str:
    """Return a cluster id in Kafka's format: a url-safe base64 uuid without padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka's own Uuid.randomUuid() refuses ids starting with "-": they read as CLI flags.
        if not cluster_id.startswith("-"):
            return cluster_id


def _tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a log file, or a note that it is missing."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} is unreadable)"


class LocalKafka(ChildProcess, StartStop):
    """One KRaft broker+controller JVM on 127.0.0.1: start()/stop(), or a with block.

    `sasl_users` ({name: password}) adds a SASL_PLAINTEXT listener, `sasl_bootstrap_servers`,
    where those users log in with PLAIN or SCRAM-SHA-512. `quick_start` (the default) runs the
    JVM with the C1 compiler only, which starts fast; the benchmark turns it off for peak speed.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        data_dir: Path | None = None,
        libs_dir: Path | None = None,
        startup_timeout_s: float = 60.0,
        sasl_users: Mapping[str, str] | None = None,
        quorum: Quorum | None = None,
        cluster_id: str | None = None,
        quick_start: bool = True,
    ) -> None:
        self._quorum, self._cluster_id = quorum, cluster_id
        self._quick_start = quick_start
        self._sasl_users = dict(sasl_users or {})
        check_sasl_users(self._sasl_users)
        self._requested_ports = (port, controller_port)
        self._port, self._controller_port = port, controller_port
        self._sasl_port: int | None = None
        self._data_dir, self._owns_data_dir = data_dir, data_dir is None
        self._libs_dir = libs_dir
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes], float], LocalKafka] | None = (
            None
        )

    @property
    def bootstrap_servers(self) -> str:
        """The broker's PLAINTEXT address, host:port."""
        if self._port is None:
            raise LocalKafkaError("LocalKafka has not been started")
        return f"{HOST}:{self._port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The broker's SASL_PLAINTEXT address, host:port; only with `sasl_users`."""
        if not self._sasl_users:
            raise LocalKafkaError("LocalKafka was created without sasl_users: it has no SASL port")
        if self._sasl_port is None:
            raise LocalKafkaError("LocalKafka has not been started")
        return f"{HOST}:{self._sasl_port}"

    @property
    def data_dir(self) -> Path:
        """The directory holding server.properties, the Kafka logs and broker.log."""
        if self._data_dir is None:
            raise LocalKafkaError("LocalKafka has not been started")
        return self._data_dir

    def start(self, *, wait: bool = True) -> None:
        """Format storage if needed, launch the broker and wait until it answers metadata (a
        cluster's nodes start with wait=False, then wait_until_ready(): a quorum needs them all)."""
        if self.is_running:
            raise LocalKafkaError("LocalKafka is already running")
        libs = self._libs_dir or ensure_kafka_classpath()
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="local-kafka-"))
        try:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            if (self._data_dir / "kraft-logs" / "meta.properties").exists():
                self._read_ports()
            else:
                self._write_server_properties()
                self._format_storage(libs)
            self._launch(libs)
            if wait:
                self.wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 30 s) and remove a temp data dir."""
        self._end_process(graceful=True)
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None
            # A fresh temp dir on the next start() gets fresh ports too, unless some were given.
            self._port, self._controller_port = self._requested_ports
            self._sasl_port = None

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; the data dir and ports are kept for restart()."""
        self._end_process(graceful=False)

    def freeze(self) -> None:
        """SIGSTOP the broker, as a hung or cut-off node is: its connections stay open and say
        nothing, so every request to it waits out its timeout. thaw() resumes it."""
        if self._process is None:
            raise LocalKafkaError("LocalKafka is not running")
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen broker (harmless on one that runs)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Stop the broker cleanly if running, then start it on the same data dir and ports."""
        self._end_process(graceful=True)
        self.start()

    @property
    def _properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def _log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def _write_server_properties(self) -> None:
        """Write a small, fast-starting single-node KRaft config with fresh ports if not given."""
        wanted = (self._port is None, self._controller_port is None, bool(self._sasl_users))
        free = iter(free_ports(sum(wanted)))
        self._port = self._port or next(free)
        self._controller_port = self._controller_port or next(free)
        self._sasl_port = next(free) if self._sasl_users else None
        listeners = Listeners(self._port, self._controller_port, self._sasl_port)
        log_dirs = self.data_dir / "kraft-logs"
        text = render_server_properties(listeners, log_dirs, self._sasl_users, self._quorum)
        self._properties.write_text(text)

    def _read_ports(self) -> None:
        """Take the ports from an already formatted data dir's server.properties."""
        listeners = read_listeners(self._properties.read_text())
        self._port, self._controller_port = listeners.port, listeners.controller_port
        self._sasl_port = listeners.sasl_port

    def _format_storage(self, libs: Path) -> None:
        """Format the log dir as a single-node dynamic KRaft quorum with a fresh cluster id."""
        # A cluster's nodes share one id, and their static voters need no --standalone.
        quorum = () if self._quorum else ("--standalone",)
        arguments = (
            "format",
            *quorum,
            "-t",
            self._cluster_id or random_cluster_id(),
            "-c",
            str(self._properties),
            *scram_format_arguments(self._sasl_users),
        )
        self._run_java(libs, "kafka.tools.StorageTool", *arguments)

    def _java_command(
        self, libs: Path, main_class: str, *args: str, quick: bool = True
    ) -> list[str]:
        return [
            java_executable(), *_JVM_OPTIONS, *(_QUICK_START if quick else ()),
            f"-Dlog4j2.configurationFile={_LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp", f"{libs}/*", main_class, *args,
        ]  # fmt: skip

    def _run_java(self, libs: Path, main_class: str, *args: str) -> None:
        """Run a Kafka command-line tool to completion, raising with its output on failure."""
        command = self._java_command(libs, main_class, *args)
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=_TOOL_TIMEOUT_S
        )
        if result.returncode != 0:
            raise LocalKafkaError(
                f"{main_class} {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )

    def _launch(self, libs: Path) -> None:
        """Start the broker JVM with stdout and stderr appended to broker.log."""
        command = self._java_command(
            libs, "kafka.Kafka", str(self._properties), quick=self._quick_start
        )
        with self._log_file.open("ab") as log:
            # A session of its own: Ctrl-C reaches us, and we stop the broker in order.
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        # Safety net: a broker left running when the interpreter exits is stopped then.
        self._finalizer = weakref.finalize(self, stop, self._process, 10.0)

    def wait_until_ready(self) -> None:
        """Poll until the broker answers a metadata request, it dies, or the deadline passes."""
        assert self._process is not None and self._port is not None
        deadline = time.monotonic() + self._startup_timeout_s
        while True:
            if (code := self._process.poll()) is not None:
                raise LocalKafkaError(
                    f"broker exited with {code} during start-up; {self._log_file} ends:\n"
                    f"{_tail(self._log_file)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LocalKafkaError(
                    f"broker did not answer within {self._startup_timeout_s:.0f} s; "
                    f"{self._log_file} ends:\n{_tail(self._log_file)}"
                )
            # A plain connect first keeps aiokafka from logging an error per refused attempt.
            if accepts_connections(self._port) and asyncio.run(self._answers(min(remaining, 3.0))):
                return
            time.sleep(_POLL_INTERVAL_S)

    async def _answers(self, timeout_s: float) -> bool:
        """Whether the broker answers metadata, and lets the SASL users in where there are some."""
        if not await answers_metadata(self.bootstrap_servers, timeout_s):
            return False
        sasl_servers = self.sasl_bootstrap_servers if self._sasl_users else ""
        return await logs_in_with_sasl(sasl_servers, self._sasl_users, timeout_s)

    def _end_process(self, *, graceful: bool) -> None:
        """Stop the JVM if there is one; safe to call repeatedly."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._process is not None:
            if graceful:
                self.thaw()  # a frozen JVM would not act on SIGTERM
                stop(self._process, _STOP_TIMEOUT_S)
            else:
                self._process.kill()
                self._process.wait()
            self._process = None
