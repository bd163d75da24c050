"""The zone processor's rows: HeartRateZoneReached from a pre-filled topic, with Kafka
transactions (exactly once) against plain acknowledged produce plus offset commits."""

from __future__ import annotations

from bench.context import Bench, say
from bench.handoff import receive
from bench.meter import CpuMeter
from bench.process import python_module
from bench.results import Row

_MIN_EVENTS_PER_S = 200  # only sets deadlines
_MODES = (("zones_transactional", "transactional"), ("zones_at_least_once", "at-least-once"))


def measure(bench: Bench, topic: str | None) -> None:
    """One round of each chosen mode, each in a group and output topic of its own."""
    if topic is None:
        return
    for row, mode in _MODES:
        if bench.wants(row):
            say(f"zones: {mode} over {bench.options.consumer_events} events")
            bench.report.rows.append(_run(bench, topic, row, mode))


def _run(bench: Bench, topic: str, row: str, mode: str) -> Row:
    count = bench.options.consumer_events
    group = bench.group(f"zones-{mode}")
    env = {
        **bench.env(topic, group=bench.group("unused")),
        "BIOMETRICS_ZONES__GROUP_ID": group,
        "BIOMETRICS_ZONES__TOPIC": f"{group}.zones",
    }
    argv = python_module("bench.zone_throughput", f"--expect={count}")
    if mode == "at-least-once":
        argv.append("--at-least-once")
    path = bench.unique_log(row.replace("_", "-"))
    with path.open("wb") as log, CpuMeter(bench.cpu_pids()) as cpu:
        process = bench.processes.start(
            argv, bench.processes.pinning.service, env=env, stdout=log, stderr=log
        )
        code, _ = bench.processes.wait_measured(process, timeout_s=count / _MIN_EVENTS_PER_S + 60)
    if code != 0:
        raise RuntimeError(f"the zone processor ({mode}) exited with {code}; see {path}")
    result = receive(path.read_text())
    return Row(
        row,
        f"zones: HeartRateZoneReached, {mode}",
        int(result["events"]),
        float(result["seconds"]),
        errors=0,
        cpu=cpu.shares(),
        details={"zone_events": result["produced"], "batches": result["batches"], "log": str(path)},
    )
