"""run_kcat: the C ceiling, kcat (librdkafka) producing the same records with the same settings."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.process import Processes
from shared.settings import ProducerSettings


@dataclass(frozen=True)
class KcatRun:
    """How many records kcat was given, how long it took to deliver them, and its CPU use."""

    sent: int
    seconds: float
    returncode: int
    cpu_percent: float


def kcat_available() -> bool:
    """Tell whether the kcat executable is on PATH."""
    return shutil.which("kcat") is not None


def kcat_command(bootstrap: str, topic: str, producer: ProducerSettings) -> list[str]:
    """kcat -P reading key<TAB>value lines, configured as the producer service is."""
    options = {
        "acks": producer.acks,
        "enable.idempotence": str(producer.enable_idempotence).lower(),
        "linger.ms": str(producer.linger_ms),
        "batch.size": str(producer.max_batch_size),
        "compression.codec": producer.compression_type,
    }
    settings = [arg for key, value in options.items() for arg in ("-X", f"{key}={value}")]
    return ["kcat", "-P", "-q", "-b", bootstrap, "-t", topic, "-K", "\t", *settings]


def run_kcat(
    processes: Processes,
    bootstrap: str,
    topic: str,
    records: Path,
    producer: ProducerSettings,
    seconds: float,
) -> KcatRun:
    """Feed the records file to kcat's stdin over and over for `seconds`; time until it exits,
    which is once librdkafka has delivered (or given up on) every record."""
    chunk = records.read_bytes()
    lines = chunk.count(b"\n")
    started = time.monotonic()
    process = processes.start(
        kcat_command(bootstrap, topic, producer),
        processes.pinning.service,
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None
    sent = 0
    try:
        while time.monotonic() - started < seconds:
            process.stdin.write(chunk)
            sent += lines
    finally:
        process.stdin.close()
    returncode, cpu = processes.wait_measured(process, timeout_s=120)
    elapsed = time.monotonic() - started
    return KcatRun(sent, elapsed, returncode, round(100 * cpu / elapsed, 1))
