"""judge: the issue's targets, each a ratio (or value) between rows of the same run."""

from __future__ import annotations

from bench.results import Report, Target

# RSS may grow this much (as a fraction of its first sample) and still count as flat.
RSS_FLAT_GROWTH = 0.10
E2E_P99_GOAL_MS = 30.0
# How much slower than the baseline's, at one connection, the producer's p50 may be.
C1_P50_ALLOWANCE_MS = 1.0


def judge(report: Report) -> list[Target]:
    """Every target, met, missed or not measured (None) when a row it needs was not run."""
    return [
        _ratio(report, "single-event c64 ≥ 200% of the baseline", "single_c64", "baseline", 2.0),
        _ratio(report, "single-event c64 ≥ 60% of HTTP ceiling", "single_c64", "http_ceiling", 0.6),
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
    ]


def _ratio(report: Report, name: str, numerator: str, denominator: str, goal: float) -> Target:
    basis = f"{numerator} / {denominator} events/s"
    top, bottom = report.row(numerator), report.row(denominator)
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
    row = report.row("end_to_end")
    if row is None or row.p99_ms is None:
        return Target(name, None, E2E_P99_GOAL_MS, "ms", None, basis)
    met = row.p99_ms < E2E_P99_GOAL_MS
    return Target(name, round(row.p99_ms, 2), E2E_P99_GOAL_MS, "ms", met, basis)


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
