"""The producing ceilings: a bare aiokafka producer and kcat, each with the service's settings."""

from __future__ import annotations

import time

from bench.context import Bench, say
from bench.handoff import receive
from bench.kcat import kcat_available, run_kcat
from bench.meter import CpuMeter
from bench.process import python_module
from bench.results import Row
from bench.topics import count_records, create_topic


def measure(bench: Bench) -> None:
    """The `ceiling` and `c_ceiling` rows, each into a fresh topic."""
    if bench.wants("ceiling"):
        bench.report.rows.append(_aiokafka(bench))
    if bench.wants("c_ceiling"):
        if kcat_available():
            bench.report.rows.append(_kcat(bench))
        else:
            bench.report.skipped["c_ceiling"] = "kcat is not installed (apt-get install kcat)"


def _aiokafka(bench: Bench) -> Row:
    say("ceiling: a bare aiokafka producer")
    topic = create_topic(bench.bootstrap, "ceiling", bench.settings.kafka.topic_partitions)
    seconds = bench.options.seconds
    argv = python_module("bench.bare_producer", str(bench.files.records), f"--seconds={seconds}")
    path = bench.unique_log("ceiling")
    with path.open("wb") as log, CpuMeter(bench.cpu_pids()) as cpu:
        started = time.monotonic()
        process = bench.processes.start(
            argv, bench.processes.pinning.service, env=bench.env(topic), stdout=log, stderr=log
        )
        # The helper exits on its own once every record is acknowledged.
        code, cpu_s = bench.processes.wait_measured(process, timeout_s=seconds + 120)
        # Over the helper's whole life, start-up included.
        producer_cpu = round(100 * cpu_s / (time.monotonic() - started), 1)
    if code != 0:
        raise RuntimeError(f"the bare producer exited with {code}; see {path}")
    result = receive(path.read_text())
    stored = count_records(bench.bootstrap, topic)
    return Row(
        "ceiling",
        "ceiling: bare aiokafka producer",
        result["acked"],
        result["seconds"],
        errors=result["failed"] + abs(stored - result["acked"]),
        cpu=cpu.shares(producer=producer_cpu),
        details={"topic": topic, "sent": result["sent"], "records_in_topic": stored},
    )


def _kcat(bench: Bench) -> Row:
    say("C ceiling: kcat (librdkafka)")
    topic = create_topic(bench.bootstrap, "kcat", bench.settings.kafka.topic_partitions)
    with CpuMeter(bench.cpu_pids()) as cpu:
        run = run_kcat(
            bench.processes,
            bench.bootstrap,
            topic,
            bench.files.records,
            bench.settings.producer,
            bench.options.seconds,
        )
    stored = count_records(bench.bootstrap, topic)
    return Row(
        "c_ceiling",
        "C ceiling: kcat (librdkafka)",
        stored,
        run.seconds,
        errors=run.sent - stored + (run.returncode != 0),
        cpu=cpu.shares(kcat=run.cpu_percent),
        details={"topic": topic, "sent": run.sent, "exit_code": run.returncode},
    )
