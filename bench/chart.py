"""draw_chart: the report as one PNG: throughput, latency, the ratio targets and RSS over time."""

from __future__ import annotations

import math
from pathlib import Path

from bench.results import Report


class ChartUnavailableError(RuntimeError):
    """matplotlib is not installed (it comes with the bench extra)."""


def draw_chart(report: Report, path: Path) -> Path:
    """Draw the four panels into path; return it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ChartUnavailableError("matplotlib is missing: pip install -e '.[bench]'") from error

    figure, ((rate, latency), (ratios, memory)) = plt.subplots(2, 2, figsize=(15, 10))
    figure.suptitle(
        f"biometrics benchmark {report.meta['started']} ({report.meta['cpus']} cores, "
        f"{report.meta['seconds']:g} s a row, best of {report.meta['rounds']} rounds)"
    )

    rows = [row for row in report.rows if row.events_per_s > 0]
    labels = [row.label for row in rows]
    values = [row.events_per_s for row in rows]
    bars = rate.barh(labels, values, color="tab:blue")
    rate.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize=8)
    rate.invert_yaxis()
    rate.set_xscale("log")
    rate.set_xlabel("events/s")
    rate.set_title("throughput")

    timed = [row for row in rows if row.p50_ms is not None and not math.isnan(row.p50_ms)]
    positions = range(len(timed))
    latency.barh([p - 0.2 for p in positions], [r.p50_ms or 0 for r in timed], 0.4, label="p50")
    latency.barh([p + 0.2 for p in positions], [r.p99_ms or 0 for r in timed], 0.4, label="p99")
    latency.set_yticks(list(positions), [row.label for row in timed])
    latency.invert_yaxis()
    if timed:  # a log axis needs values above zero
        latency.set_xscale("log")
    latency.set_xlabel("ms per request (end to end: POST to log line)")
    latency.set_title("latency")
    latency.legend()

    measured = [t for t in report.targets if t.unit == "ratio" and t.measured is not None]
    colours = ["tab:green" if t.met else "tab:red" for t in measured]
    ratio_bars = ratios.barh([t.name for t in measured], [t.measured or 0 for t in measured])
    for bar, colour, target in zip(ratio_bars, colours, measured, strict=True):
        bar.set_color(colour)
        ratios.plot([target.goal] * 2, [bar.get_y(), bar.get_y() + bar.get_height()], "k-")
    ratios.bar_label(ratio_bars, labels=[f"{t.measured:.0%}" for t in measured], padding=3)
    ratios.invert_yaxis()
    ratios.set_xlabel("ratio within this run (black line: the goal)")
    ratios.set_title("targets")

    row = report.row("memory")
    if row is not None and row.details.get("rss_samples"):
        seconds, rss = zip(*row.details["rss_samples"], strict=True)
        memory.plot(seconds, [value / 2**20 for value in rss])
        memory.set_ylim(bottom=0)
    memory.set_xlabel("seconds under load")
    memory.set_ylabel("producer RSS, MiB")
    memory.set_title("memory")

    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
