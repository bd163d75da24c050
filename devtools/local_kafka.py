"""A real single-node KRaft Apache Kafka broker, assembled from Maven Central jars, for tests.

Errors:
    LocalKafkaError(RuntimeError) -- Maven, Java or the broker failed; the message says why.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import functools
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import weakref
import xml.etree.ElementTree as ET
from pathlib import Path
from types import TracebackType

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

_KAFKA_FILES = Path(__file__).with_name("kafka")
_POM = _KAFKA_FILES / "pom.xml"
_LOG4J2_CONFIG = _KAFKA_FILES / "log4j2.properties"
_JVM_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
_POLL_INTERVAL_S = 0.25
_STOP_TIMEOUT_S = 30.0
_MAVEN_TIMEOUT_S = 900.0
_TOOL_TIMEOUT_S = 120.0
_HOST = "127.0.0.1"
_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class LocalKafkaError(RuntimeError):
    """Maven, Java or the broker failed to do what LocalKafka needed."""


@functools.cache
def kafka_version() -> str:
    """Return the Kafka version declared in devtools/kafka/pom.xml, the one source of truth."""
    version = ET.parse(_POM).getroot().findtext("m:properties/m:kafka.version", namespaces=_NS)
    if not version:
        raise LocalKafkaError(f"{_POM} does not declare <kafka.version>")
    return version.strip()


def ensure_kafka_classpath(cache_dir: Path | None = None) -> Path:
    """Download Kafka's runtime jars with Maven unless already cached; return their directory."""
    if cache_dir is None:
        default = Path.home() / ".cache" / "biometrics"
        cache_dir = Path(os.environ.get("BIOMETRICS_CACHE_DIR") or default)
    root = cache_dir / f"kafka-{kafka_version()}"
    libs, marker = root / "libs", root / "libs.complete"
    # The stamp covers the whole pom, so editing e.g. the log4j2 version refreshes the jars.
    stamp = hashlib.sha256(_POM.read_bytes()).hexdigest()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        # Parallel test sessions share the cache: one downloads, the others wait for it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == stamp:
            return libs
        marker.unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        _copy_dependencies(libs)
        marker.write_text(stamp + "\n")
    return libs


def _copy_dependencies(libs: Path) -> None:
    """Run `mvn dependency:copy-dependencies` for the pom into libs."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("`mvn` is not on PATH; install Maven 3.8+ to assemble Kafka")
    command = [
        *(mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(_POM)),
        *("dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"),
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=_MAVEN_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as error:
        raise LocalKafkaError(f"mvn did not finish within {_MAVEN_TIMEOUT_S:.0f} s") from error
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise LocalKafkaError(f"mvn exited with {result.returncode}:\n{tail}")


def _java() -> str:
    """Return the java executable, preferring $JAVA_HOME."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise LocalKafkaError("no `java` found (set JAVA_HOME or put java 17+ on PATH)")
    return java


def _free_ports(count: int) -> list[int]:
    """Return distinct ports that were free on 127.0.0.1 a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((_HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _random_cluster_id() -> str:
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


def _accepts_connections(port: int) -> bool:
    """Tell whether something listens on 127.0.0.1:port."""
    try:
        with socket.create_connection((_HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


async def _answers_metadata(bootstrap_servers: str, timeout_s: float) -> bool:
    """Tell whether the broker answers a metadata request that lists at least one broker."""
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=max(1000, int(timeout_s * 1000))
    )
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except KafkaError:
        return False
    finally:
        await client.close()


def _terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM the process, then SIGKILL it if it has not exited within timeout_s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LocalKafka:
    """One KRaft broker+controller JVM on 127.0.0.1: start()/stop(), or a with block."""

    def __init__(
        self,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        data_dir: Path | None = None,
        libs_dir: Path | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self._requested_ports = (port, controller_port)
        self._port, self._controller_port = port, controller_port
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
        return f"{_HOST}:{self._port}"

    @property
    def pid(self) -> int | None:
        """The broker JVM's process id, or None when it is not running."""
        return self._process.pid if self._process and self.is_running else None

    @property
    def is_running(self) -> bool:
        """Tell whether the broker JVM is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def data_dir(self) -> Path:
        """The directory holding server.properties, the Kafka logs and broker.log."""
        if self._data_dir is None:
            raise LocalKafkaError("LocalKafka has not been started")
        return self._data_dir

    def start(self) -> None:
        """Format storage if needed, launch the broker and wait until it answers metadata."""
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
            self._wait_until_ready()
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

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; the data dir and ports are kept for restart()."""
        self._end_process(graceful=False)

    def restart(self) -> None:
        """Stop the broker cleanly if running, then start it on the same data dir and ports."""
        self._end_process(graceful=True)
        self.start()

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def _log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def _write_server_properties(self) -> None:
        """Write a small, fast-starting single-node KRaft config with fresh ports if not given."""
        if self._port is None or self._controller_port is None:
            free = iter(_free_ports(2))
            self._port = self._port or next(free)
            self._controller_port = self._controller_port or next(free)
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://{_HOST}:{self._port},CONTROLLER://{_HOST}:{self._controller_port}",
            "advertised.listeners": f"PLAINTEXT://{_HOST}:{self._port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.bootstrap.servers": f"{_HOST}:{self._controller_port}",
            "log.dirs": str(self.data_dir / "kraft-logs"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            # One partition instead of 50 makes the first group join fast on a small machine.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a kill the controller waits out the dead broker's session (default 9 s)
            # before the restarted broker may register again; keep that wait short.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            # Fewer threads and a small cleaner buffer keep a 512 MB heap on 2 cores comfortable.
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        self._properties.write_text("\n".join(lines) + "\n")

    def _read_ports(self) -> None:
        """Take the ports from an already formatted data dir's server.properties."""
        text = self._properties.read_text()
        found = dict(re.findall(r"(PLAINTEXT|CONTROLLER)://[\w.-]+:(\d+)", text))
        self._port, self._controller_port = int(found["PLAINTEXT"]), int(found["CONTROLLER"])

    def _format_storage(self, libs: Path) -> None:
        """Format the log dir as a single-node dynamic KRaft quorum with a fresh cluster id."""
        arguments = (
            "format",
            "--standalone",
            "-t",
            _random_cluster_id(),
            "-c",
            str(self._properties),
        )
        self._run_java(libs, "kafka.tools.StorageTool", *arguments)

    def _java_command(self, libs: Path, main_class: str, *args: str) -> list[str]:
        return [
            _java(), *_JVM_OPTIONS,
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
        command = self._java_command(libs, "kafka.Kafka", str(self._properties))
        with self._log_file.open("ab") as log:
            # A session of its own: Ctrl-C reaches us, and we stop the broker in order.
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        # Safety net: a broker left running when the interpreter exits is stopped then.
        self._finalizer = weakref.finalize(self, _terminate, self._process, 10.0)

    def _wait_until_ready(self) -> None:
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
            if _accepts_connections(self._port) and asyncio.run(
                _answers_metadata(self.bootstrap_servers, min(remaining, 3.0))
            ):
                return
            time.sleep(_POLL_INTERVAL_S)

    def _end_process(self, *, graceful: bool) -> None:
        """Stop the JVM if there is one; safe to call repeatedly."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._process is not None:
            if graceful:
                _terminate(self._process, _STOP_TIMEOUT_S)
            else:
                self._process.kill()
                self._process.wait()
            self._process = None


if __name__ == "__main__":
    from devtools.__main__ import main

    raise SystemExit(main())
