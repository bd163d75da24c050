"""The producing ceilings: a bare aiokafka producer and kcat, with the producer's settings."""

from __future__ import annotations

import shutil
import subprocess
import time

from bench.context import Bench, say
from bench.metering import cpu_meter
from bench.report import Row


def measure(bench: Bench) -> None:
    """The `ceiling` and `c_ceiling` rows, each into a fresh topic."""
    if bench.wants("ceiling"):
        bench.report.rows.append(_aiokafka(bench))
    if bench.wants("c_ceiling"):
        if shutil.which("kcat"):
            bench.report.rows.append(_kcat(bench))
        else:
            bench.report.skipped["c_ceiling"] = "kcat is not installed (apt-get install kcat)"


def _aiokafka(bench: Bench) -> Row:
    say("ceiling: a bare aiokafka producer")
    topic = bench.create_topic("ceiling")
    seconds = bench.options.seconds
    # The helper exits on its own once every record is acknowledged.
    result, producer_cpu, cpu = bench.run_helper(
        "bench.clients",
        ["produce", str(bench.files.records), f"--seconds={seconds}"],
        log=bench.unique_log("ceiling"),
        env=bench.env(topic),
        timeout_s=seconds + 120,
    )
    stored = bench.count_records(topic)
    return Row(
        "ceiling", "ceiling: bare aiokafka producer", result["acked"], result["seconds"],
        errors=result["failed"] + abs(stored - result["acked"]),
        cpu=cpu.shares(producer=producer_cpu),
        details={"topic": topic, "sent": result["sent"], "records_in_topic": stored},
    )  # fmt: skip


def _kcat(bench: Bench) -> Row:
    """Feed the records to kcat's stdin for the row's seconds; time it until it has delivered."""
    say("C ceiling: kcat (librdkafka)")
    topic = bench.create_topic("kcat")
    chunk = bench.files.records.read_bytes()
    lines = chunk.count(b"\n")
    producer = bench.settings.producer
    options = {  # configured as the producer service is
        "acks": producer.acks,
        "enable.idempotence": str(producer.enable_idempotence).lower(),
        "linger.ms": str(producer.linger_ms),
        "batch.size": str(producer.max_batch_size),
        "compression.codec": producer.compression_type,
    }
    settings = [arg for key, value in options.items() for arg in ("-X", f"{key}={value}")]
    argv = ["kcat", "-P", "-q", "-b", bench.bootstrap, "-t", topic, "-K", "\t", *settings]
    processes = bench.processes
    with cpu_meter(bench.cpu_pids()) as cpu:
        started = time.monotonic()
        process = processes.start(
            argv, bench.pinning.service, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert process.stdin is not None
        sent = 0
        try:
            while time.monotonic() - started < bench.options.seconds:
                process.stdin.write(chunk)
                sent += lines
        finally:
            process.stdin.close()
        returncode, cpu_s = processes.wait_measured(process, timeout_s=120)
        seconds = time.monotonic() - started
    stored = bench.count_records(topic)
    return Row(
        "c_ceiling", "C ceiling: kcat (librdkafka)", stored, seconds,
        errors=sent - stored + (returncode != 0),
        cpu=cpu.shares(kcat=round(100 * cpu_s / seconds, 1)),
        details={"topic": topic, "sent": sent, "exit_code": returncode},
    )  # fmt: skip
