"""The report of one run: the measured rows, the targets judged from them (judge), and the
report as the printed table (render_table) and as one PNG (draw_chart)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

# RSS may grow this much (as a fraction of its first sample) and still count as flat.
RSS_FLAT_GROWTH = 0.10
E2E_P99_GOAL_MS = 30.0
ZONES_E2E_P99_GOAL_MS = 50.0
# How much slower than the baseline's, at one connection, the producer's p50 may be.
C1_P50_ALLOWANCE_MS = 1.0


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
class Target:
    """A goal of the issue, measured as a ratio (or a value) within this run."""

    name: str
    measured: float | None
    goal: float
    # "ratio": at least goal; "ms": below goal; "added_ms": at most goal ms over the reference
    # row's; "growth": at most goal
    unit: str
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
        """Keep one row per name, the round with the most events/s (a shared machine only ever
        slows a row down); its details list every round's events/s."""
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

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; every row gains its events_per_s."""
        rows = [{**asdict(row), "events_per_s": row.events_per_s} for row in self.rows]
        return {
            "meta": self.meta,
            "rows": rows,
            "targets": [asdict(target) for target in self.targets],
            "skipped": self.skipped,
            "profiles": self.profiles,
        }

    def write_json(self, path: Path) -> Path:
        """Write the report as indented JSON (orjson writes NaN as null); return the path."""
        path.write_bytes(orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))
        return path


def judge(report: Report) -> list[Target]:
    """Every target, met, missed or not measured (None) when a row it needs was not run."""
    return [
        _ratio(report, "single-event c64 ≥ 70% of HTTP ceiling", "single_c64", "http_ceiling", 0.7),
        _ratio(report, "batch ≥ 120% of the aiokafka ceiling", "batch", "ceiling", 1.2),
        _c1_latency(report),
        _ratio(report, "consumer ≥ 60% of the minimal loop", "consumer", "consumer_minimum", 0.6),
        _ratio(
            report,
            "zones transactional ≥ 80% of at-least-once",
            "zones_transactional",
            "zones_at_least_once",
            0.8,
        ),
        _e2e(report),
        _memory(report),
        _ratio(
            report,
            "zones transactional ≥ 100% of single-event c64",
            "zones_transactional",
            "single_c64",
            1.0,
        ),
        _zones_e2e(report),
        _zones_memory(report),
        _ratio(
            report,
            "single-event c64 with device limits ≥ 90% of without",
            "single_c64_limited",
            "single_c64",
            0.9,
        ),
        _ratio(
            report,
            "single-event c64 with idempotency keys ≥ 90% of without",
            "single_c64_keyed",
            "single_c64",
            0.9,
        ),
        _decode_cost(report, "consumer", "consumer"),
        _decode_cost(report, "zones_transactional", "zones"),
    ]


# What the tolerant decode may add to a reader's CPU per event.
TOLERANT_DECODE_ALLOWANCE = 0.05


def _decode_cost(report: Report, row_name: str, process: str) -> Target:
    """What decoding tolerantly instead of strictly adds to the CPU per event of the reader
    measured in `row_name` (its process `process`)."""
    name = f"tolerant decode adds ≤ {TOLERANT_DECODE_ALLOWANCE:.0%} to {row_name} CPU per event"
    basis = f"(1/decode_tolerant - 1/decode_strict) / ({row_name} {process} CPU s per event)"
    strict, tolerant, row = (report.row(n) for n in ("decode_strict", "decode_tolerant", row_name))
    if (
        strict is None
        or tolerant is None
        or row is None
        or min(strict.events_per_s, tolerant.events_per_s, row.events_per_s) <= 0
        or not row.cpu.get(process)
    ):
        return Target(name, None, TOLERANT_DECODE_ALLOWANCE, "growth", None, basis)
    added_s = 1 / tolerant.events_per_s - 1 / strict.events_per_s
    per_event_s = row.cpu[process] / 100 / row.events_per_s
    cost = added_s / per_event_s
    met = cost <= TOLERANT_DECODE_ALLOWANCE
    return Target(name, round(cost, 4), TOLERANT_DECODE_ALLOWANCE, "growth", met, basis)


def _ratio(report: Report, name: str, numerator: str, denominator: str, goal: float) -> Target:
    basis = f"{numerator} / {denominator} events/s"
    top, bottom = report.row(numerator), report.row(denominator)
    paired = None if top is None else top.details.get("rounds_paired_ratio")
    if paired:
        # Measured in slices alternating with the denominator's load: the median round's ratio.
        ratio = statistics.median(paired)
        basis += ", in alternating slices, the median round"
        return Target(name, round(ratio, 3), goal, "ratio", ratio >= goal, basis)
    if top is None or bottom is None or bottom.events_per_s <= 0:
        return Target(name, None, goal, "ratio", None, basis)
    ratio = top.events_per_s / bottom.events_per_s
    return Target(name, round(ratio, 3), goal, "ratio", ratio >= goal, basis)


def _c1_latency(report: Report) -> Target:
    name = f"single-event c1 p50 ≤ baseline c1 p50 + {C1_P50_ALLOWANCE_MS:g} ms"
    basis = "single_c1 p50 - baseline_c1 p50"
    single, baseline = report.row("single_c1"), report.row("baseline_c1")
    if single is None or baseline is None or single.p50_ms is None or baseline.p50_ms is None:
        return Target(name, None, C1_P50_ALLOWANCE_MS, "added_ms", None, basis)
    added = single.p50_ms - baseline.p50_ms
    met = added <= C1_P50_ALLOWANCE_MS
    return Target(name, round(added, 2), C1_P50_ALLOWANCE_MS, "added_ms", met, basis)


def _e2e(report: Report) -> Target:
    name = f"end-to-end p99 < {E2E_P99_GOAL_MS:g} ms at half max"
    basis = "end_to_end p99, POST to log line"
    return _p99_below(report, name, basis, "end_to_end", E2E_P99_GOAL_MS)


def _zones_e2e(report: Report) -> Target:
    name = f"end-to-end through the zones p99 < {ZONES_E2E_P99_GOAL_MS:g} ms at half max"
    basis = "end_to_end_zones p99, POST to committed zone event"
    return _p99_below(report, name, basis, "end_to_end_zones", ZONES_E2E_P99_GOAL_MS)


def _p99_below(report: Report, name: str, basis: str, row_name: str, goal_ms: float) -> Target:
    row = report.row(row_name)
    if row is None or row.p99_ms is None:
        return Target(name, None, goal_ms, "ms", None, basis)
    return Target(name, round(row.p99_ms, 2), goal_ms, "ms", row.p99_ms < goal_ms, basis)


def _memory(report: Report) -> Target:
    name = f"producer RSS flat (≤ {RSS_FLAT_GROWTH:.0%} growth)"
    basis = "memory: (end RSS - start RSS) / start RSS"
    return _growth(report, name, basis, "memory", "rss")


def _zones_memory(report: Report) -> Target:
    name = f"zone processor RSS flat (≤ {RSS_FLAT_GROWTH:.0%} growth)"
    basis = "end_to_end_zones: zone processor (end RSS - start RSS) / start RSS"
    return _growth(report, name, basis, "end_to_end_zones", "zones_rss")


def _growth(report: Report, name: str, basis: str, row_name: str, prefix: str) -> Target:
    row = report.row(row_name)
    if row is None or not row.details.get(f"{prefix}_start_mb"):
        return Target(name, None, RSS_FLAT_GROWTH, "growth", None, basis)
    start, end = row.details[f"{prefix}_start_mb"], row.details[f"{prefix}_end_mb"]
    growth = (end - start) / start
    return Target(
        name, round(growth, 3), RSS_FLAT_GROWTH, "growth", growth <= RSS_FLAT_GROWTH, basis
    )


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
    loaded = [row for row in report.rows if "wrk" in row.cpu]
    if loaded:
        busiest = max(loaded, key=lambda row: row.cpu["wrk"])
        lines += [
            "",
            f"load generator headroom: wrk used at most {busiest.cpu['wrk']:.0f}% of its core "
            f"({busiest.label}, {busiest.events_per_s:,.0f} events/s)",
        ]
    memory = report.row("memory")
    if memory is not None and memory.details.get("rss_start_mb"):
        d = memory.details
        lines += [
            "",
            f"producer RSS under c{d['connections']} load for {memory.seconds:.0f} s: "
            f"start {d['rss_start_mb']:.1f} MiB, max {d['rss_max_mb']:.1f} MiB, "
            f"end {d['rss_end_mb']:.1f} MiB",
        ]
    e2e = report.row("end_to_end")
    if e2e is not None:
        d = e2e.details
        lines += [
            "",
            f"end to end at {d['rate']:.0f} events/s ({d['rate_basis']}), "
            f"{d['achieved_rate']:.0f}/s achieved: HTTP p50 {d['http_p50_ms']:.1f} ms, "
            f"p99 {d['http_p99_ms']:.1f} ms; {d['missing_in_log']} sent but not logged",
        ]
    zones = report.row("end_to_end_zones")
    if zones is not None:
        d = zones.details
        lines += [
            "",
            f"end to end through the zones at {d['rate']:.0f} events/s ({d['rate_basis']}) for "
            f"{zones.seconds:.0f} s, {d['achieved_rate']:.0f}/s achieved; "
            f"{d['missing_zone_events']} sent without a committed zone event; zone processor "
            f"RSS start {d['zones_rss_start_mb']} MiB, max {d['zones_rss_max_mb']} MiB, "
            f"end {d['zones_rss_end_mb']} MiB",
        ]
    for name, profile in report.profiles.items():
        lines += ["", *_format_profile(name, profile)]
    if report.skipped:
        lines += ["", *(f"skipped {name}: {why}" for name, why in report.skipped.items())]
    return "\n".join(lines)


def _format_rows(rows: list[Row]) -> str:
    header = (
        "row",
        "events/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "rounds, events/s",
        "CPU, % of one core",
    )
    table = [header]
    for row in rows:
        cpu = ", ".join(f"{name} {value:.0f}" for name, value in row.cpu.items())
        table.append(
            (
                row.label,
                f"{row.events_per_s:,.0f}",
                _ms(row.p50_ms),
                _ms(row.p99_ms),
                "" if row.errors is None else str(row.errors),
                " ".join(_short(rate) for rate in row.details.get("rounds_events_per_s", [])),
                cpu,
            )
        )
    return _columns(table, right=(1, 2, 3, 4))


def _format_targets(targets: list[Target]) -> str:
    table = [("target", "measured", "goal", "result", "from")]
    for target in targets:
        if target.unit == "ms":
            goal = f"< {target.goal:g} ms"
            measured = "" if target.measured is None else f"{target.measured:.1f} ms"
        elif target.unit == "added_ms":
            goal = f"≤ +{target.goal:g} ms"
            measured = "" if target.measured is None else f"{target.measured:+.1f} ms"
        elif target.unit == "growth":
            goal = f"≤ {target.goal:.0%}"
            measured = "" if target.measured is None else f"{target.measured:+.1%}"
        else:
            goal = f"≥ {target.goal:.0%}"
            measured = "" if target.measured is None else f"{target.measured:.0%}"
        result = {True: "met", False: "MISSED", None: "not run"}[target.met]
        table.append((target.name, measured, goal, result, target.basis))
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
