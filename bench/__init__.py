"""The benchmark: the pipeline's throughput and latency against its ceilings, in one run
(`python -m bench --help`; docs/performance.md)."""

from bench.options import Options, parse_options
from bench.report import Report, Row, Target, judge

__all__ = ["Options", "Report", "Row", "Target", "judge", "parse_options"]
