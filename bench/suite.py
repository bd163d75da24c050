"""run_benchmark: one broker, every chosen row in turn, then the table, the JSON and the chart."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench import ceilings, consumption, end_to_end, http_load, zones
from bench.context import Bench, Files, say
from bench.event import (
    batch_bodies,
    event_bodies,
    record_lines,
    template_body,
    write_lines,
)
from bench.options import Options
from bench.process import ROOT, Pinning, Processes
from bench.results import Report
from devtools.local_kafka import LocalKafka, kafka_version
from shared.settings import load_settings

_DISTINCT_EVENTS = 1000
_DISTINCT_BATCHES = 20


def run_benchmark(options: Options) -> tuple[Report, Path]:
    """Run the chosen rows against one broker; return the report and the run directory."""
    started = datetime.now(UTC)
    directory = options.output / started.strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    pinning = Pinning.for_this_machine()
    files = _write_files(directory, options.events_per_batch)
    report = Report(meta=_meta(options, pinning, started, files))
    with ExitStack() as stack:
        bootstrap, broker_pid = stack.enter_context(_broker(options))
        # The driver itself keeps off the service's core (children choose their own with taskset).
        if pinning.load is not None:
            os.sched_setaffinity(0, {int(pinning.load)})
        processes = stack.enter_context(Processes(pinning))
        bench = Bench(
            options,
            processes,
            bootstrap,
            broker_pid,
            directory,
            files,
            load_settings(ROOT).with_bootstrap_servers(bootstrap),
            report,
        )
        with http_load.serving(bench) as services:
            topic = consumption.prefill(bench)
            # Rounds interleave the rows, so a busy spell on the shared machine slows a little of
            # each rather than all of one; each row keeps its best round.
            for number in range(1, options.rounds + 1):
                say(f"round {number} of {options.rounds}")
                ceilings.measure(bench)
                http_load.measure(bench, services)
                consumption.measure(bench, topic)
                zones.measure(bench, topic)
            http_load.measure_sustained(bench, services)
            consumption.profile(bench, topic)
        end_to_end.measure(bench)
    report.keep_best_rounds()
    report.meta["loadavg_end"] = os.getloadavg()
    return report, directory


@contextmanager
def _broker(options: Options) -> Iterator[tuple[str, int | None]]:
    if options.bootstrap_servers:
        yield options.bootstrap_servers, None
        return
    say("starting a local Apache Kafka")
    with LocalKafka() as kafka:
        say(f"Kafka {kafka_version()} on {kafka.bootstrap_servers} (pid {kafka.pid})")
        yield kafka.bootstrap_servers, kafka.pid
    say("Kafka stopped")


def _write_files(directory: Path, events_per_batch: int) -> Files:
    bodies = event_bodies(_DISTINCT_EVENTS)
    return Files(
        bodies=write_lines(directory / "bodies.jsonl", bodies),
        batches=write_lines(
            directory / "batches.jsonl", batch_bodies(_DISTINCT_BATCHES, events_per_batch)
        ),
        records=write_lines(directory / "records.tsv", record_lines(bodies)),
        template=write_lines(directory / "template.json", [template_body()]),
    )


def _meta(options: Options, pinning: Pinning, started: datetime, files: Files) -> dict[str, object]:
    return {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "cores": pinning.describe(),
        "kafka": kafka_version(),
        "python": platform.python_version(),
        "event_bytes": len(template_body()),
        "seconds": options.seconds,
        "rounds": options.rounds,
        "warmup_seconds": options.warmup_seconds,
        "memory_seconds": options.memory_seconds,
        "rows": list(options.rows),
        "loadavg_start": os.getloadavg(),
    }
