"""`python -m bench`: measure, print the table, write results.json, table.txt and chart.png."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from bench.chart import ChartUnavailableError, draw_chart
from bench.context import say
from bench.options import parse_options
from bench.suite import run_benchmark
from bench.table import render_table
from bench.targets import judge


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


if __name__ == "__main__":
    sys.exit(main())
