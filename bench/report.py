"""One run's rows, its targets judged (judge), as a table (render_table) and a PNG (draw_chart)."""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass
class Row:
    """One line of the table: what was measured, how fast, and what each process cost."""

    name: str
    label: str
    events: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None
    # CPU per process over the measured window, in % of one core.
    cpu: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Events handled per second over the measured window."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Goal:
    """One target: what it holds, its unit (_UNITS), its limit, the rows it compares."""

    name: str
    unit: str
    limit: float
    row: str
    # "ratio", "added_ms": the other row; "ms": what is timed; "growth": the prefix of the RSS
    # details; "decode": the process whose CPU per event it is held to.
    other: str
    basis: str = ""  # the table's "from" column, when not the unit's


# The targets, in the order the table shows them; docs/performance.md explains each.
TARGETS = (
    Goal("single-event c64 ≥ 70% of HTTP ceiling", "ratio", 0.7, "single_c64", "http_ceiling"),
    Goal("batch ≥ 120% of the aiokafka ceiling", "ratio", 1.2, "batch", "ceiling"),
    Goal("single-event c1 p50 ≤ baseline c1 p50 + 1 ms", "added_ms", 1.0,
         "single_c1", "baseline_c1"),
    Goal("consumer ≥ 60% of the minimal loop", "ratio", 0.6, "consumer", "consumer_minimum"),
    Goal("zones transactional ≥ 80% of at-least-once", "ratio", 0.8,
         "zones_transactional", "zones_at_least_once"),
    Goal("end-to-end p99 < 30 ms at half max", "ms", 30.0, "end_to_end", "POST to log line"),
    Goal("producer RSS flat (≤ 10% growth)", "growth", 0.1, "memory", "rss"),
    Goal("zones transactional ≥ 100% of single-event c64", "ratio", 1.0,
         "zones_transactional", "single_c64"),
    Goal("end-to-end through the zones p99 < 50 ms at half max", "ms", 50.0,
         "end_to_end_zones", "POST to committed zone event"),
    Goal("zone processor RSS flat (≤ 10% growth)", "growth", 0.1, "end_to_end_zones", "zones_rss",
         "end_to_end_zones: zone processor (end RSS - start RSS) / start RSS"),
    Goal("single-event c64 with device limits ≥ 90% of without", "ratio", 0.9,
         "single_c64_limited", "single_c64"),
    Goal("single-event c64 with idempotency keys ≥ 90% of without", "ratio", 0.9,
         "single_c64_keyed", "single_c64"),
    Goal("tolerant decode adds ≤ 5% to consumer CPU per event", "decode", 0.05,
         "consumer", "consumer"),
    Goal("tolerant decode adds ≤ 5% to zones_transactional CPU per event", "decode", 0.05,
         "zones_transactional", "zones"),
)  # fmt: skip


@dataclass(frozen=True)
class Target:
    """A goal judged within this run: measured as a ratio (or a value), met or not."""

    name: str
    measured: float | None
    goal: float
    unit: str  # as Goal.unit
    met: bool | None  # None: a row it needs was not run
    basis: str


@dataclass
class Report:
    """Everything one run produced."""

    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def row(self, name: str) -> Row | None:
        """The row of that name, if it was measured."""
        return next((row for row in self.rows if row.name == name), None)

    def keep_best_rounds(self) -> None:
        """Keep one row per name, its fastest round; its details list every round's events/s."""
        rounds: dict[str, list[Row]] = {}
        for row in self.rows:
            rounds.setdefault(row.name, []).append(row)
        self.rows = []
        for measured in rounds.values():
            best = max(measured, key=lambda row: row.events_per_s)
            best.details["rounds_events_per_s"] = [round(row.events_per_s, 1) for row in measured]
            if all("paired" in row.details for row in measured):
                best.details["rounds_paired_ratio"] = [
                    round(row.events_per_s / row.details["paired"]["events_per_s"], 4)
                    for row in measured
                    if row.details["paired"]["events_per_s"] > 0
                ]
            self.rows.append(best)

    def write_json(self, path: Path) -> Path:
        """Write the report as indented JSON, each row with its events_per_s; return the path."""
        rows = [{**asdict(row), "events_per_s": row.events_per_s} for row in self.rows]
        targets = [asdict(target) for target in self.targets]
        report = {**asdict(self), "rows": rows, "targets": targets}  # orjson writes NaN as null
        path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        return path


def judge(report: Report) -> list[Target]:
    """Every target, met, missed or not measured (None) when a row it needs was not run."""
    targets = []
    for goal in TARGETS:
        unit = _UNITS[goal.unit]
        measured, how = unit.measure(report, goal)
        met = None if measured is None else unit.met(measured, goal.limit)
        shown = None if measured is None else round(measured, 4)
        basis = (goal.basis or unit.basis.format(goal.row, goal.other)) + how
        targets.append(Target(goal.name, shown, goal.limit, goal.unit, met, basis))
    return targets


def _ratio(report: Report, goal: Goal) -> tuple[float | None, str]:
    top, bottom = report.row(goal.row), report.row(goal.other)
    if top is not None and (paired := top.details.get("rounds_paired_ratio")):
        # Measured in slices alternating with the other's load: the median round's ratio.
        return statistics.median(paired), ", in alternating slices, the median round"
    if top is None or bottom is None or bottom.events_per_s <= 0:
        return None, ""
    return top.events_per_s / bottom.events_per_s, ""


def _added_ms(report: Report, goal: Goal) -> tuple[float | None, str]:
    row, other = report.row(goal.row), report.row(goal.other)
    if row is None or other is None or row.p50_ms is None or other.p50_ms is None:
        return None, ""
    return row.p50_ms - other.p50_ms, ""


def _p99_ms(report: Report, goal: Goal) -> tuple[float | None, str]:
    row = report.row(goal.row)
    return (None if row is None else row.p99_ms), ""


def _growth(report: Report, goal: Goal) -> tuple[float | None, str]:
    row, rss = report.row(goal.row), goal.other
    if row is None or not row.details.get(f"{rss}_start_mb"):
        return None, ""
    start, end = row.details[f"{rss}_start_mb"], row.details[f"{rss}_end_mb"]
    return (end - start) / start, ""


def _decode(report: Report, goal: Goal) -> tuple[float | None, str]:
    strict, tolerant, row = map(report.row, ("decode_strict", "decode_tolerant", goal.row))
    if (
        strict is None
        or tolerant is None
        or row is None
        or min(strict.events_per_s, tolerant.events_per_s, row.events_per_s) <= 0
        or not row.cpu.get(goal.other)
    ):
        return None, ""
    added_s = 1 / tolerant.events_per_s - 1 / strict.events_per_s
    per_event_s = row.cpu[goal.other] / 100 / row.events_per_s
    return added_s / per_event_s, ""


@dataclass(frozen=True)
class _Unit:
    """How a unit's targets are measured (the value, and what the basis adds), met and written."""

    measure: Callable[[Report, Goal], tuple[float | None, str]]
    met: Callable[[float, float], bool]
    basis: str  # formatted with the goal's row and other
    goal: str
    shown: str


_DECODE_BASIS = "(1/decode_tolerant - 1/decode_strict) / ({} {} CPU s per event)"
_UNITS = {
    "ratio": _Unit(_ratio, operator.ge, "{} / {} events/s", "≥ {:.0%}", "{:.0%}"),
    "added_ms": _Unit(_added_ms, operator.le, "{} p50 - {} p50", "≤ +{:g} ms", "{:+.1f} ms"),
    "ms": _Unit(_p99_ms, operator.lt, "{} p99, {}", "< {:g} ms", "{:.1f} ms"),
    "growth": _Unit(_growth, operator.le, "{}: (end RSS - start RSS) / start RSS", "≤ {:.0%}",
                    "{:+.1%}"),
    "decode": _Unit(_decode, operator.le, _DECODE_BASIS, "≤ {:.0%}", "{:+.1%}"),
}  # fmt: skip


def render_table(report: Report) -> str:
    """Rows, then targets with met/missed, then how the cores were shared and what was skipped."""
    meta = report.meta
    lines = [
        f"biometrics benchmark {meta['started']}  ({meta['cpus']} cores, Kafka {meta['kafka']}, "
        f"event {meta['event_bytes']} B, {meta['seconds']:g} s a row, best of {meta['rounds']} "
        "rounds)",
        f"cores: {meta['cores']}",
        "",
        _format_rows(report.rows),
        "CPU: each process's share of one core during the row; kafka is the broker; other is the",
        "rest of the machine's busy time, work from outside the benchmark that slows the row down.",
        "",
        _format_targets(report.targets),
    ]
    notes = [f"skipped {name}: {why}" for name, why in report.skipped.items()]
    blocks = [*(_format_profile(name, p) for name, p in report.profiles.items()), notes]
    return "\n\n".join(["\n".join(lines), *_notes(report), *map("\n".join, filter(None, blocks))])


def _notes(report: Report) -> list[str]:
    """A paragraph each on wrk's headroom, the producer's RSS and the end-to-end rows."""
    notes = []
    if loaded := [row for row in report.rows if "wrk" in row.cpu]:
        busiest = max(loaded, key=lambda row: row.cpu["wrk"])
        notes.append(
            f"load generator headroom: wrk used at most {busiest.cpu['wrk']:.0f}% of its core "
            f"({busiest.label}, {busiest.events_per_s:,.0f} events/s)"
        )
    if (memory := report.row("memory")) is not None and memory.details.get("rss_start_mb"):
        d = memory.details
        notes.append(
            f"producer RSS under c{d['connections']} load for {memory.seconds:.0f} s: "
            f"start {d['rss_start_mb']:.1f} MiB, max {d['rss_max_mb']:.1f} MiB, "
            f"end {d['rss_end_mb']:.1f} MiB"
        )
    if (e2e := report.row("end_to_end")) is not None:
        d = e2e.details
        notes.append(
            f"end to end at {d['rate']:.0f} events/s ({d['rate_basis']}), "
            f"{d['achieved_rate']:.0f}/s achieved: HTTP p50 {d['http_p50_ms']:.1f} ms, "
            f"p99 {d['http_p99_ms']:.1f} ms; {d['missing_in_log']} sent but not logged"
        )
    if (zones := report.row("end_to_end_zones")) is not None:
        d = zones.details
        notes.append(
            f"end to end through the zones at {d['rate']:.0f} events/s ({d['rate_basis']}) for "
            f"{zones.seconds:.0f} s, {d['achieved_rate']:.0f}/s achieved; "
            f"{d['missing_zone_events']} sent without a committed zone event; zone processor "
            f"RSS start {d['zones_rss_start_mb']} MiB, max {d['zones_rss_max_mb']} MiB, "
            f"end {d['zones_rss_end_mb']} MiB"
        )
    return notes


def _format_rows(rows: list[Row]) -> str:
    table = [
        ("row", "events/s", "p50 ms", "p99 ms", "errors", "rounds, events/s", "CPU, % of one core")
    ]
    for row in rows:
        rounds = " ".join(_short(rate) for rate in row.details.get("rounds_events_per_s", []))
        cpu = ", ".join(f"{name} {value:.0f}" for name, value in row.cpu.items())
        errors = "" if row.errors is None else str(row.errors)
        rate = f"{row.events_per_s:,.0f}"
        table.append((row.label, rate, _ms(row.p50_ms), _ms(row.p99_ms), errors, rounds, cpu))
    return _columns(table, right=(1, 2, 3, 4))


def _format_targets(targets: list[Target]) -> str:
    table = [("target", "measured", "goal", "result", "from")]
    for target in targets:
        unit = _UNITS[target.unit]
        shown = "" if target.measured is None else unit.shown.format(target.measured)
        result = {True: "met", False: "MISSED", None: "not run"}[target.met]
        table.append((target.name, shown, unit.goal.format(target.goal), result, target.basis))
    return _columns(table, right=(1,))


def _format_profile(name: str, profile: dict[str, Any]) -> list[str]:
    """The busiest frames of one py-spy profile, and the self time per package."""
    packages = ", ".join(f"{package} {share:g}%" for package, share in profile["packages"][:6])
    lines = [
        f"where the {name}'s time goes ({profile['load']}, {profile['events_per_s']:.0f} "
        f"events/s, {profile['samples']} samples of 200/s): {packages}",
        "  self time:",
    ]
    lines += [f"  {share:5.1f}%  {frame}" for frame, share in profile["self"][:10]]
    return lines


def _short(rate: float) -> str:
    return f"{rate / 1000:.1f}k" if rate >= 1000 else f"{rate:.0f}"


def _ms(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.1f}"


def _columns(table: Sequence[tuple[str, ...]], right: tuple[int, ...]) -> str:
    widths = [max(len(cells[i]) for cells in table) for i in range(len(table[0]))]
    lines = []
    for number, cells in enumerate(table):
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


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
    values = [row.events_per_s for row in rows]
    bars = rate.barh([row.label for row in rows], values, color="tab:blue")
    rate.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize=8)
    rate.invert_yaxis()
    rate.set(xscale="log", xlabel="events/s", title="throughput")

    timed = [row for row in rows if row.p50_ms is not None and not math.isnan(row.p50_ms)]
    positions = range(len(timed))
    latency.barh([p - 0.2 for p in positions], [r.p50_ms or 0 for r in timed], 0.4, label="p50")
    latency.barh([p + 0.2 for p in positions], [r.p99_ms or 0 for r in timed], 0.4, label="p99")
    latency.set_yticks(list(positions), [row.label for row in timed])
    latency.invert_yaxis()
    if timed:  # a log axis needs values above zero
        latency.set_xscale("log")
    latency.set(xlabel="ms per request (end to end: POST to log line)", title="latency")
    latency.legend()

    measured = [t for t in report.targets if t.unit == "ratio" and t.measured is not None]
    colours = ["tab:green" if t.met else "tab:red" for t in measured]
    ratio_bars = ratios.barh([t.name for t in measured], [t.measured or 0 for t in measured])
    for bar, colour, target in zip(ratio_bars, colours, measured, strict=True):
        bar.set_color(colour)
        ratios.plot([target.goal] * 2, [bar.get_y(), bar.get_y() + bar.get_height()], "k-")
    ratios.bar_label(ratio_bars, labels=[f"{t.measured:.0%}" for t in measured], padding=3)
    ratios.invert_yaxis()
    ratios.set(xlabel="ratio within this run (black line: the goal)", title="targets")

    row = report.row("memory")
    if row is not None and row.details.get("rss_samples"):
        seconds, rss = zip(*row.details["rss_samples"], strict=True)
        memory.plot(seconds, [value / 2**20 for value in rss])
        memory.set_ylim(bottom=0)
    memory.set(xlabel="seconds under load", ylabel="producer RSS, MiB", title="memory")

    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
