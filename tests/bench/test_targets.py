"""The targets are judged from ratios between rows of one run."""

from __future__ import annotations

from bench.results import Report, Row
from bench.targets import judge


def _report(*rows: Row) -> Report:
    return Report(meta={}, rows=list(rows))


def test_a_ratio_target_is_met_at_its_goal_and_missed_below_it() -> None:
    report = _report(
        Row("ceiling", "ceiling", events=1000, seconds=1.0),
        Row("batch", "batch", events=700, seconds=1.0),
        Row("consumer_ceiling", "bare loop", events=1000, seconds=1.0),
        Row("consumer", "consumer", events=799, seconds=1.0),
    )

    targets = {target.basis.split(" ")[0]: target for target in judge(report)}

    assert (targets["batch"].measured, targets["batch"].met) == (0.7, True)
    assert (targets["consumer"].measured, targets["consumer"].met) == (0.799, False)


def test_a_target_whose_rows_did_not_run_is_neither_met_nor_missed() -> None:
    targets = judge(_report(Row("batch", "batch", events=700, seconds=1.0)))

    assert all(target.met is None and target.measured is None for target in targets)


def test_latency_must_stay_below_its_goal_and_rss_growth_within_ten_percent() -> None:
    report = _report(
        Row("end_to_end", "e2e", events=10, seconds=1.0, p50_ms=5.0, p99_ms=50.0),
        Row(
            "memory",
            "rss",
            events=10,
            seconds=60.0,
            details={"rss_start_mb": 100.0, "rss_end_mb": 110.0},
        ),
    )

    by_unit = {target.unit: target for target in judge(report)}

    assert by_unit["ms"].met is False
    assert (by_unit["growth"].measured, by_unit["growth"].met) == (0.1, True)
