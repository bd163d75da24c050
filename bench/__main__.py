"""`python -m bench`: one broker, every chosen row in turn, then the table, JSON and chart."""

from __future__ import annotations

import os
import platform
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench import ceilings, consumption, end_to_end, http_load
from bench.context import PLACEHOLDER_DEVICE_ID, Bench, Files, say, standard_body
from bench.metering import ROOT, Pinning
from bench.options import Options, parse_options
from bench.report import ChartUnavailableError, Report, draw_chart, judge, render_table
from devtools.local_kafka import LocalKafka, kafka_version
from devtools.processes import Processes
from shared.runtime.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; every process it started is stopped on the way out, even on failure."""
    options = parse_options(argv)

    def stop(signum: int, frame: FrameType | None) -> None:
        # Unwinds through the context managers that own the broker and the processes.
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    report, directory = run_benchmark(options)
    report.targets = judge(report)
    table = render_table(report)
    print(table, flush=True)
    (directory / "table.txt").write_text(table + "\n")
    say(f"results: {report.write_json(directory / 'results.json')}")
    try:
        say(f"chart: {draw_chart(report, directory / 'chart.png')}")
    except ChartUnavailableError as error:
        say(f"no chart: {error}")
    return 0


def run_benchmark(options: Options) -> tuple[Report, Path]:
    """Run the chosen rows against one broker; return the report and the run directory."""
    started = datetime.now(UTC)
    directory = options.output / started.strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    pinning = Pinning.for_this_machine()
    files = Files.write(directory, options.events_per_batch)
    report = Report(meta=_meta(options, pinning, started))
    with ExitStack() as stack:
        bootstrap, broker_pid = stack.enter_context(_broker(options))
        # The driver itself keeps off the service's core (children choose their own with taskset).
        if pinning.load is not None:
            os.sched_setaffinity(0, {int(pinning.load)})
        processes = stack.enter_context(Processes(cwd=ROOT))
        settings = load_settings(ROOT).with_bootstrap_servers(bootstrap)
        bench = Bench(
            options, processes, pinning, bootstrap, broker_pid, directory, files, settings, report
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
                consumption.measure_decoding(bench)
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
    with LocalKafka(quick_start=False) as kafka:  # measured at its peak speed
        say(f"Kafka {kafka_version()} on {kafka.bootstrap_servers} (pid {kafka.pid})")
        yield kafka.bootstrap_servers, kafka.pid
    say("Kafka stopped")


def _meta(options: Options, pinning: Pinning, started: datetime) -> dict[str, object]:
    return {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "cpus": os.cpu_count(), "cores": pinning.describe(), "kafka": kafka_version(),
        "python": platform.python_version(),
        "event_bytes": len(standard_body(PLACEHOLDER_DEVICE_ID)),
        "seconds": options.seconds, "rounds": options.rounds,
        "warmup_seconds": options.warmup_seconds, "memory_seconds": options.memory_seconds,
        "rows": list(options.rows), "loadavg_start": os.getloadavg(),
    }  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
