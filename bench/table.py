"""render_table: the report as the plain-text table the command prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.results import Report, Row, Target


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
