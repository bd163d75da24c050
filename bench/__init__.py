"""The benchmark: the pipeline against its ceilings, in one run (docs/performance.md)."""

from bench.options import Options, parse_options
from bench.report import Report, Row, Target, judge

__all__ = ["Options", "Report", "Row", "Target", "judge", "parse_options"]
