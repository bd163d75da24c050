"""judge: the issue's targets, each a ratio (or value) between rows of the same run."""

from __future__ import annotations

from bench.results import Report, Target

# RSS may grow this much (as a fraction of its first sample) and still count as flat.
RSS_FLAT_GROWTH = 0.10
E2E_P99_GOAL_MS = 50.0


def judge(report: Report) -> list[Target]:
    """Every target, met, missed or not measured (None) when a row it needs was not run."""
    return [
        _ratio(report, "batch ≥ 70% of the aiokafka ceiling", "batch", "ceiling", 0.70),
        _ratio(report, "single-event c64 ≥ baseline", "single_c64", "baseline", 1.0),
        _ratio(report, "single-event c64 ≥ 50% of HTTP ceiling", "single_c64", "http_ceiling", 0.5),
        _ratio(report, "consumer ≥ 80% of the bare loop", "consumer", "consumer_ceiling", 0.80),
        _e2e(report),
        _memory(report),
    ]


def _ratio(report: Report, name: str, numerator: str, denominator: str, goal: float) -> Target:
    basis = f"{numerator} / {denominator} events/s"
    top, bottom = report.row(numerator), report.row(denominator)
    if top is None or bottom is None or bottom.events_per_s <= 0:
        return Target(name, None, goal, "ratio", None, basis)
    ratio = top.events_per_s / bottom.events_per_s
    return Target(name, round(ratio, 3), goal, "ratio", ratio >= goal, basis)


def _e2e(report: Report) -> Target:
    name, basis = "end-to-end p99 < 50 ms at half max", "end_to_end p99, POST to log line"
    row = report.row("end_to_end")
    if row is None or row.p99_ms is None:
        return Target(name, None, E2E_P99_GOAL_MS, "ms", None, basis)
    return Target(name, round(row.p99_ms, 2), E2E_P99_GOAL_MS, "ms", row.p99_ms < 50, basis)


def _memory(report: Report) -> Target:
    row = report.row("memory")
    basis = "memory: (end RSS - start RSS) / start RSS"
    name = f"producer RSS flat (≤ {RSS_FLAT_GROWTH:.0%} growth)"
    if row is None or not row.details.get("rss_start_mb"):
        return Target(name, None, RSS_FLAT_GROWTH, "growth", None, basis)
    start, end = row.details["rss_start_mb"], row.details["rss_end_mb"]
    growth = (end - start) / start
    return Target(
        name, round(growth, 3), RSS_FLAT_GROWTH, "growth", growth <= RSS_FLAT_GROWTH, basis
    )
